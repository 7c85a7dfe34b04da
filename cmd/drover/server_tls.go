package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/drover-cd/drover/internal/tlsca"
)

// tlsFlags adds the flags of the TLS listener and the advertised address to cmd.
func (o *serverOptions) tlsFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.tlsListen, "tls-listen", "",
		"address to serve HTTPS on as well (the same API, git and registry as --listen), e.g. :8443; off when empty. Docker Engines on other machines pull only over HTTPS")
	f.StringVar(&o.tlsCert, "tls-cert", "",
		"with --tls-listen: your own certificate (PEM, the chain after it); default: one issued by the server's own CA in DATA/ca (drover ca prints it)")
	f.StringVar(&o.tlsKey, "tls-key", "", "with --tls-cert: its private key (PEM)")
	f.StringVar(&o.advertise, "advertise", "",
		"the URL other machines reach this server at, e.g. https://10.0.0.1:8443 (https needs --tls-listen); cluster nodes pull images from it. None when empty")
}

// checkTLS checks the TLS and --advertise flags, before anything starts.
func (o *serverOptions) checkTLS() error {
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return badInput(errors.New("--tls-cert and --tls-key go together: give both (your certificate and its key), or neither for one from the server's own CA"))
	}
	if o.tlsCert != "" && o.tlsListen == "" {
		return badInput(errors.New("--tls-cert is for the TLS listener: also give --tls-listen ADDR (e.g. --tls-listen :8443)"))
	}
	if o.advertise == "" {
		return nil
	}
	u, err := parseAdvertise(o.advertise)
	if err != nil {
		return badInput(fmt.Errorf("--advertise %s: %w", o.advertise, err))
	}
	if u.Scheme == "https" && o.tlsListen == "" {
		return badInput(fmt.Errorf("--advertise %s is https, but the server serves no TLS: also give --tls-listen ADDR (e.g. --tls-listen :%s), or advertise an http:// URL", o.advertise, u.Port()))
	}
	return nil
}

// parseAdvertise parses an --advertise URL: http or https, a host, and nothing after the
// port. The URL it returns always has a port (80 or 443 when none was given).
func parseAdvertise(s string) (*url.URL, error) {
	const example = "e.g. https://10.0.0.1:8443"
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("not a URL (%w): give the address other machines reach this server at, %s", err, example)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("give an http:// or https:// URL, %s", example)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("give a host, the address other machines reach this server at, %s", example)
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsUnspecified() {
		return nil, fmt.Errorf("other machines cannot reach %s: give an address of this machine they reach, %s", u.Hostname(), example)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, fmt.Errorf("give the server's address only, scheme, host and port, without a path or query, %s", example)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("port %q is not one from 1 to 65535, %s", port, example)
	}
	return &url.URL{Scheme: u.Scheme, Host: net.JoinHostPort(u.Hostname(), port)}, nil
}

// advertisedHost is HOST:PORT of --advertise (the port made explicit), as cluster nodes
// name images: HOST:PORT/REPO@DIGEST, and as their /etc/docker/certs.d folder is named;
// "" when none was given.
func (o *serverOptions) advertisedHost() string {
	if o.advertise == "" {
		return ""
	}
	u, err := parseAdvertise(o.advertise)
	if err != nil {
		return ""
	}
	return u.Host
}

// tlsListener is the server's HTTPS listener.
type tlsListener struct {
	ln     net.Listener // the TCP listener: the one handed over in an upgrade
	config *tls.Config
	ca     *tlsca.CA // the CA that issued the certificate; nil with the operator's own
}

// loadTLS prepares the TLS listener of --tls-listen with the operator's certificate, or
// one the CA in DATA/ca issues for the hosts the server is reached at; listen opens it.
// nil when --tls-listen is not given. It runs before a running server is asked for its
// sockets: a bad certificate file or CA must not cost that server its place.
func (o *serverOptions) loadTLS(log *slog.Logger) (*tlsListener, error) {
	if o.tlsListen == "" {
		return nil, nil
	}
	out := &tlsListener{}
	var cert tls.Certificate
	if o.tlsCert != "" {
		c, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return nil, badInput(fmt.Errorf("--tls-cert %s, --tls-key %s: %w", o.tlsCert, o.tlsKey, err))
		}
		cert = c
	} else {
		dir := filepath.Join(o.data, "ca")
		_, statErr := os.Stat(filepath.Join(dir, tlsca.CertFile))
		ca, err := tlsca.Open(dir)
		if err != nil {
			return nil, fmt.Errorf("the server's certificate authority: %w", err)
		}
		if errors.Is(statErr, fs.ErrNotExist) {
			log.Warn("made the server's certificate authority: put its certificate on each Docker node that pulls from this server (drover ca --help says how), and back DATA/ca up with the database",
				"ca", filepath.Join(dir, tlsca.CertFile), "ca_sha256", ca.Fingerprint())
		}
		hosts := o.certHosts()
		c, issued, err := ca.ServerCert(hosts)
		if err != nil {
			return nil, fmt.Errorf("the TLS certificate: %w", err)
		}
		if issued {
			log.Info("issued the TLS listener's certificate from the server's CA", "hosts", hosts, "until", c.Leaf.NotAfter.Format("2006-01-02"))
		}
		cert, out.ca = c, ca
	}
	out.config = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	return out, nil
}

// listen opens the listener on addr, or takes taken, the previous server's. A nil t
// (no TLS) listens nowhere.
func (t *tlsListener) listen(taken net.Listener, addr string, log *slog.Logger) error {
	if t == nil {
		return nil
	}
	ln, err := listenOr(taken, addr, log, "--tls-listen")
	if err != nil {
		return badInput(fmt.Errorf("--tls-listen %s: %w", addr, err))
	}
	t.ln = ln
	return nil
}

// close closes the listener, if any.
func (t *tlsListener) close() {
	if t != nil && t.ln != nil {
		t.ln.Close()
	}
}

// certHosts are the hosts the CA's certificate names: --advertise's, --tls-listen's
// when it is not an unspecified address, and this machine's loopback names.
func (o *serverOptions) certHosts() []string {
	var hosts []string
	if h := o.advertisedHost(); h != "" {
		host, _, _ := net.SplitHostPort(h)
		hosts = append(hosts, host)
	}
	if host, _, err := net.SplitHostPort(o.tlsListen); err == nil && host != "" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			hosts = append(hosts, host)
		}
	}
	for _, h := range []string{"127.0.0.1", "::1", "localhost"} {
		if !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// caPEM is the certificate of the CA that issued the listener's, for GET /api/v1/ca;
// nil when there is none.
func (t *tlsListener) caPEM() []byte {
	if t == nil || t.ca == nil {
		return nil
	}
	return t.ca.CertPEM()
}

// logAttrs say where the listener is and whose certificate it serves, for the log.
func (t *tlsListener) logAttrs(certFile string) []any {
	attrs := []any{"url", "https://" + t.ln.Addr().String()}
	if t.ca != nil {
		return append(attrs, "ca", filepath.Join(t.ca.Dir(), tlsca.CertFile), "ca_sha256", t.ca.Fingerprint())
	}
	return append(attrs, "cert", certFile)
}
