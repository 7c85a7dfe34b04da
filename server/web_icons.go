package server

import (
	"html/template"
	"slices"
	"strings"
)

// Status icons are inline SVG, not Unicode symbols: the fonts of many systems (Debian's
// among them) lack glyphs such as ⏸ and draw an empty box (issue 16). Every page holds one
// hidden sprite that defines each icon as a symbol with the id iconID(status); an icon is
// a <use> of it, so drover.js changes an icon by changing its href. Icons draw in
// currentColor, in a 16×16 box.

// iconOther is the icon of a status without one of its own.
const iconOther = "none"

// iconStatuses are the statuses with an icon of their own.
func iconStatuses() []string {
	return []string{"success", "failure", "running", "pending", "waiting", "cancelled", "error", "lost", "skipped"}
}

// iconShape is the drawing of status's icon: strokes of currentColor unless it says
// otherwise.
func iconShape(status string) string {
	const dot = `fill="currentColor" stroke="none"`
	switch status {
	case "success": // a tick
		return `<path d="M3 8.5l3.2 3.2L13 4.6"/>`
	case "failure": // a cross
		return `<path d="M4 4l8 8M12 4l-8 8"/>`
	case "running": // play
		return `<path d="M5 3v10l8.5-5z" ` + dot + `/>`
	case "pending": // a ring
		return `<circle cx="8" cy="8" r="5"/>`
	case "waiting": // pause
		return `<path d="M5.5 3.5v9M10.5 3.5v9" stroke-width="2.5"/>`
	case "cancelled": // a ring, struck through
		return `<circle cx="8" cy="8" r="5.5"/><path d="M4.1 11.9l7.8-7.8"/>`
	case "error": // an exclamation mark
		return `<path d="M8 2.5v7"/><circle cx="8" cy="13" r="1.3" ` + dot + `/>`
	case "lost": // a question mark: the agent went silent, the outcome is unknown
		return `<path d="M5.5 5.8a2.6 2.6 0 1 1 3.6 2.4c-.7.3-1.1.9-1.1 1.6v.4"/><circle cx="8" cy="13.2" r="1.2" ` + dot + `/>`
	case "skipped": // an arrow jumping over
		return `<path d="M2.5 11.5a5.5 5.5 0 0 1 10.5-2.5"/><path d="M13.5 4.5v4.5H9"/>`
	}
	return `<circle cx="8" cy="8" r="2" ` + dot + `/>`
}

// iconID is the id of the sprite's symbol for status.
func iconID(status string) string {
	if !slices.Contains(iconStatuses(), status) {
		status = iconOther
	}
	return "i-" + status
}

// iconSprite is the hidden SVG that defines every icon; the layout puts it on each page.
func iconSprite() template.HTML {
	var b strings.Builder
	b.WriteString(`<svg class="sprite" xmlns="http://www.w3.org/2000/svg" aria-hidden="true" focusable="false">`)
	for _, s := range append(iconStatuses(), iconOther) {
		b.WriteString(`<symbol id="` + iconID(s) + `" viewBox="0 0 16 16" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">`)
		b.WriteString(iconShape(s))
		b.WriteString(`</symbol>`)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // #nosec G203 -- constant markup, no user data
}

// statusIcon is the icon of status, an image named after it (a title for the tooltip
// and an aria-label), shown next to the status's word: status never shows by colour alone.
func statusIcon(status string) template.HTML {
	s := template.HTMLEscapeString(status)
	return template.HTML(`<svg class="glyph" viewBox="0 0 16 16" width="16" height="16" role="img" aria-label="` + s +
		`"><title>` + s + `</title><use href="#` + iconID(status) + `"/></svg>`) // #nosec G203 -- status is escaped
}
