// Drover web UI: live updates for server-rendered pages. Every page works without this
// file; it adds server-sent events (runs and steps change state without a reload), a
// streamed step log, log search and running durations. Plain JS, no build.
(function () {
  'use strict';

  var STATUSES = ['pending', 'running', 'waiting', 'success', 'failure', 'cancelled', 'error', 'lost', 'skipped', 'none'];
  // ICONS are the statuses with an icon of their own in the page's sprite (iconStatuses in
  // web_icons.go); others show #i-none.
  var ICONS = ['success', 'failure', 'running', 'pending', 'waiting', 'cancelled', 'error', 'lost', 'skipped'];

  function active(status) { return status === 'pending' || status === 'running' || status === 'waiting'; }

  // formatDuration mirrors formatDuration in web_funcs.go.
  function formatDuration(ms) {
    if (!(ms > 0)) return '—';
    if (ms < 100) return '<0.1s';
    if (ms < 60000) return (ms / 1000).toFixed(1) + 's';
    var pad = function (n) { return (n < 10 ? '0' : '') + n; };
    if (ms < 3600000) return Math.floor(ms / 60000) + 'm ' + pad(Math.floor(ms / 1000) % 60) + 's';
    return Math.floor(ms / 3600000) + 'h ' + pad(Math.floor(ms / 60000) % 60) + 'm';
  }

  // ansiSpans mirrors parseANSI in web_ansi.go: [{cls, text}] for one log line.
  function ansiSpans(line) {
    line = line.replace(/\r+$/, '');
    var cr = line.lastIndexOf('\r');
    if (cr >= 0) line = line.slice(cr + 1);
    var spans = [], text = '', fg = 0, bold = false;
    function cls() { return (fg ? 'fg-' + fg : '') + (fg && bold ? ' ' : '') + (bold ? 'b' : ''); }
    function flush() { if (text) { spans.push({ cls: cls(), text: text }); text = ''; } }
    function apply(params) {
      var codes = params.split(/[;:]/).filter(function (c) { return c !== ''; });
      if (!codes.length) codes = ['0'];
      for (var i = 0; i < codes.length; i++) {
        if (!/^\d+$/.test(codes[i])) continue;
        var c = parseInt(codes[i], 10);
        if (c === 0) { fg = 0; bold = false; }
        else if (c === 1) bold = true;
        else if (c === 22) bold = false;
        else if ((c >= 30 && c <= 37) || (c >= 90 && c <= 97)) fg = c;
        else if (c === 39) fg = 0;
        else if (c === 38 || c === 48) i += codes[i + 1] === '5' ? 2 : codes[i + 1] === '2' ? 4 : 0;
      }
    }
    for (var i = 0; i < line.length;) {
      var ch = line.charCodeAt(i);
      if (ch === 0x1b && line[i + 1] === '[') {
        var j = i + 2;
        while (j < line.length && (line.charCodeAt(j) < 0x40 || line.charCodeAt(j) > 0x7e)) j++;
        if (line[j] === 'm') { flush(); apply(line.slice(i + 2, j)); }
        i = j + 1;
      } else if (ch === 0x1b && line[i + 1] === ']') {
        var k = i + 2;
        while (k < line.length && line.charCodeAt(k) !== 7 && !(line.charCodeAt(k) === 0x1b && line[k + 1] === '\\')) k++;
        if (line.charCodeAt(k) === 0x1b) k++;
        i = k + 1;
      } else if (ch === 0x1b) {
        i++;
        while (i < line.length && line.charCodeAt(i) >= 0x20 && line.charCodeAt(i) <= 0x2f) i++;
        if (i < line.length && line.charCodeAt(i) >= 0x30 && line.charCodeAt(i) <= 0x7e) i++;
      } else if ((ch < 0x20 && ch !== 9) || ch === 0x7f) {
        i++;
      } else {
        text += line[i];
        i++;
      }
    }
    flush();
    return spans;
  }

  // setStatus gives el (and its badge, icon and status text) the class and words of status.
  function setStatus(el, status) {
    var targets = [el].concat(Array.prototype.slice.call(el.querySelectorAll('.badge, [data-status]')));
    targets.forEach(function (t) {
      STATUSES.forEach(function (s) { t.classList.remove('st-' + s); });
      t.classList.add('st-' + status);
    });
    el.querySelectorAll('.status-text').forEach(function (t) { t.textContent = status; });
    el.querySelectorAll('.icon').forEach(function (t) { setIcon(t, status); });
    var title = el.querySelector(':scope > title');
    if (title) title.textContent = el.getAttribute('data-step') + ': ' + status;
  }

  // setIcon points an icon (an SVG, or an element that holds one) at status's symbol and
  // names it after status, as statusIcon in web_icons.go draws it.
  function setIcon(t, status) {
    var svg = t.tagName.toLowerCase() === 'svg' ? t : t.querySelector('svg');
    if (!svg) return;
    var use = svg.querySelector('use');
    if (use) use.setAttribute('href', '#i-' + (ICONS.indexOf(status) >= 0 ? status : 'none'));
    if (svg.hasAttribute('aria-label')) svg.setAttribute('aria-label', status);
    var title = svg.querySelector('title');
    if (title) title.textContent = status;
  }

  // setDuration shows a duration and keeps it ticking while it runs. A run waiting for an
  // approval does not tick: the page shows how long it ran before it stopped and since
  // when it waits, which the server renders (the "rundur" template).
  function setDuration(el, item) {
    var waiting = item.status === 'waiting' && !item.finished;
    el.querySelectorAll('.dur').forEach(function (d) {
      if (item.started && !item.finished && !waiting) d.setAttribute('data-started', item.started);
      else d.removeAttribute('data-started');
      if (!waiting) d.textContent = item.duration_ms ? formatDuration(item.duration_ms) : (d.tagName === 'tspan' ? '' : '—');
    });
    if (!waiting) el.querySelectorAll('.wait-since').forEach(function (w) { w.remove(); });
  }

  function tick() {
    document.querySelectorAll('.dur[data-started]').forEach(function (d) {
      var t = Date.parse(d.getAttribute('data-started'));
      if (!isNaN(t)) d.textContent = formatDuration(Date.now() - t);
    });
  }

  // showOverflow shades the edges of a scrolling graph where it goes on beyond its box, so a
  // wide graph never just looks cut off, scroll bar or not.
  function showOverflow(box) {
    var wrap = box.parentElement;
    var left = box.scrollLeft > 1;
    var right = box.scrollLeft + box.clientWidth < box.scrollWidth - 1;
    wrap.classList.toggle('more-left', left);
    wrap.classList.toggle('more-right', right);
    if (left || right) box.setAttribute('tabindex', '0'); // scrollable by keyboard
    else box.removeAttribute('tabindex');
  }

  function followGraph() {
    var box = document.querySelector('.graph-wrap > .graph-box');
    if (!box || box.hasAttribute('data-follows')) return;
    box.setAttribute('data-follows', '');
    box.addEventListener('scroll', function () { showOverflow(box); }, { passive: true });
    showOverflow(box);
  }

  function byAttr(attr, value) {
    return document.querySelectorAll('[' + attr + '="' + CSS.escape(value) + '"]');
  }

  // refresh swaps the element with id for its fresh copy from the server: the page's
  // HTML stays the one source of how things look.
  function refresh(id) {
    return fetch(location.href, { credentials: 'same-origin' }).then(function (res) {
      if (!res.ok) throw new Error(res.status);
      return res.text();
    }).then(function (html) {
      var fresh = new DOMParser().parseFromString(html, 'text/html').getElementById(id);
      var cur = document.getElementById(id);
      if (fresh && cur) cur.replaceWith(document.adoptNode(fresh));
      followGraph();
    }).catch(function () { /* keep what is shown */ });
  }

  // A run's page and a step's page follow the run's events.
  function followRun(body) {
    var es = new EventSource(body.getAttribute('data-events'));
    var finishedSteps = -1, last = null, status = body.getAttribute('data-status');
    var isRunPage = body.id === 'run-body';
    function reload() {
      // Re-apply the newest event: the fetched HTML may be older than it.
      refresh(body.id).then(function () { if (last) apply(last); });
    }
    es.addEventListener('run', function (ev) {
      var run = last = JSON.parse(ev.data);
      var done = apply(run);
      // A run that stops to wait brings its approvals, and how long it ran.
      var stopped = run.status === 'waiting' && status !== 'waiting';
      status = run.status;
      if (!active(run.status)) {
        es.close();
        if (isRunPage) reload();
      } else if (isRunPage && (stopped || (finishedSteps >= 0 && done !== finishedSteps))) {
        reload(); // finished steps bring tests, coverage and artifacts
      }
      finishedSteps = done;
    });
  }

  // apply shows a run's JSON on the page and returns how many of its steps are done.
  function apply(run) {
    document.querySelectorAll('[data-run-status]').forEach(function (el) { setStatus(el, run.status); });
    var runDur = document.getElementById('run-dur');
    if (runDur) setDuration(runDur, run);
    var done = 0;
    (run.steps || []).forEach(function (st) {
      if (!active(st.status)) done++;
      byAttr('data-step', st.name).forEach(function (el) { setStatus(el, st.status); setDuration(el, st); });
      byAttr('data-from', st.name).forEach(function (el) { setStatus(el, st.status); });
    });
    return done;
  }

  // A project's page follows its runs: statuses change in place; new runs reload the list.
  function followProject(box) {
    var es = new EventSource(box.getAttribute('data-events'));
    es.addEventListener('runs', function (ev) {
      var stale = false;
      JSON.parse(ev.data).forEach(function (run) {
        var row = document.querySelector('tr[data-run="' + run.number + '"]');
        if (!row) { stale = true; return; }
        // A run that stops to wait shows how long it ran, which the server renders.
        if (run.status === 'waiting' && !row.querySelector('.wait-since')) stale = true;
        setStatus(row.querySelector('[data-status]'), run.status);
        setDuration(row, run);
      });
      if (stale) refresh('runs');
    });
  }

  // An environment's page reloads its body whenever what runs there changes.
  function followEnv(box) {
    var es = new EventSource(box.getAttribute('data-events'));
    var first = true;
    es.addEventListener('env', function () {
      if (first) { first = false; return; } // the page is as new as the first event
      refresh('env');
    });
  }

  // The agents page has no event stream: it reloads its list every data-poll seconds
  // while the tab is visible.
  function pollAgents(box) {
    var secs = parseInt(box.getAttribute('data-poll'), 10);
    if (!(secs > 0)) return;
    setInterval(function () { if (!document.hidden) refresh('agents'); }, secs * 1000);
  }

  // Log search: highlight matching lines, optionally hide the others; Enter jumps.
  var search = { q: '', only: false, at: -1 };
  function matches(line) { return search.q !== '' && line.textContent.toLowerCase().indexOf(search.q) >= 0; }
  function markLine(line) { line.classList.toggle('hit', matches(line)); }
  function runSearch() {
    var log = document.getElementById('log');
    var input = document.getElementById('log-search');
    if (!log || !input) return;
    search.q = input.value.toLowerCase();
    search.only = document.getElementById('log-only').checked;
    search.at = -1;
    log.querySelectorAll('.line').forEach(markLine);
    log.classList.toggle('only', search.only && search.q !== '');
    countHits();
  }
  function countHits() {
    var n = document.querySelectorAll('#log .line.hit').length;
    document.getElementById('log-count').textContent = search.q ? n + (n === 1 ? ' matching line' : ' matching lines') : '';
  }

  function lineElement(n, text) {
    var div = document.createElement('div');
    div.className = 'line';
    div.id = 'L' + n;
    var a = document.createElement('a');
    a.className = 'ln';
    a.href = '#L' + n;
    a.setAttribute('aria-label', 'line ' + n);
    a.textContent = n;
    var txt = document.createElement('span');
    txt.className = 'txt';
    ansiSpans(text).forEach(function (s) {
      if (!s.cls) { txt.appendChild(document.createTextNode(s.text)); return; }
      var span = document.createElement('span');
      span.className = s.cls;
      span.textContent = s.text;
      txt.appendChild(span);
    });
    div.appendChild(a);
    div.appendChild(txt);
    markLine(div);
    return div;
  }

  // followLog streams the rest of a step's log: the server rendered the first
  // data-offset bytes; the stream starts at the log's beginning, so those are skipped.
  function followLog(log) {
    var skip = parseInt(log.getAttribute('data-offset'), 10) || 0;
    var next = parseInt(log.getAttribute('data-next'), 10) || 1;
    var state = document.getElementById('log-state');
    var decoder = new TextDecoder();
    var pending = '';
    function add(lines) {
      var nearBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
      var frag = document.createDocumentFragment();
      lines.forEach(function (l) { frag.appendChild(lineElement(next++, l)); });
      log.appendChild(frag);
      if (search.q) countHits();
      if (nearBottom && !location.hash) window.scrollTo(0, document.body.scrollHeight);
    }
    fetch(log.getAttribute('data-follow'), { credentials: 'same-origin' }).then(function (res) {
      if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
      var reader = res.body.getReader();
      function pump() {
        return reader.read().then(function (r) {
          if (r.done) {
            pending += decoder.decode();
            if (pending) add([pending]);
            state.textContent = 'The step finished writing its log.';
            return;
          }
          var chunk = r.value;
          if (skip > 0) {
            var n = Math.min(skip, chunk.length);
            chunk = chunk.subarray(n);
            skip -= n;
          }
          pending += decoder.decode(chunk, { stream: true });
          var parts = pending.split('\n');
          pending = parts.pop();
          if (parts.length) add(parts);
          return pump();
        });
      }
      return pump();
    }).catch(function (err) {
      state.textContent = 'The live log stopped (' + err.message + '); reload the page for the rest.';
    });
  }

  function init() {
    followGraph();
    window.addEventListener('resize', function () {
      var box = document.querySelector('.graph-wrap > .graph-box');
      if (box) showOverflow(box);
    });
    var runBody = document.getElementById('run-body') || document.getElementById('step-body');
    if (runBody && window.EventSource && active(runBody.getAttribute('data-status'))) followRun(runBody);
    var runs = document.getElementById('runs');
    if (runs && window.EventSource && runs.getAttribute('data-events')) followProject(runs);
    var env = document.getElementById('env');
    if (env && window.EventSource && env.getAttribute('data-events')) followEnv(env);
    var agents = document.getElementById('agents');
    if (agents && window.fetch && agents.hasAttribute('data-poll')) pollAgents(agents);
    var log = document.getElementById('log');
    if (log && log.getAttribute('data-follow') && window.fetch && window.ReadableStream) followLog(log);
    var input = document.getElementById('log-search');
    if (input) {
      input.addEventListener('input', runSearch);
      document.getElementById('log-only').addEventListener('change', runSearch);
      input.addEventListener('keydown', function (ev) {
        if (ev.key !== 'Enter') return;
        ev.preventDefault();
        var hits = document.querySelectorAll('#log .line.hit');
        if (!hits.length) return;
        search.at = (search.at + (ev.shiftKey ? hits.length - 1 : 1)) % hits.length;
        hits[search.at].scrollIntoView({ block: 'center' });
      });
    }
    setInterval(tick, 1000);
  }

  // For tests: the browser test checks these against their Go twins.
  window.drover = { ansiSpans: ansiSpans, formatDuration: formatDuration };

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
