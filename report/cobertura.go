package report

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// lineKey identifies a source line in a Cobertura report.
type lineKey struct {
	file, line string
}

// parseCobertura reads a Cobertura XML document. The lines-covered and
// lines-valid attributes of the root are used when both are present;
// otherwise the <line> elements under each <class> are counted, once per
// file and line number, covered when any of them has hits > 0. The whole
// document is read either way, so a truncated file is an error.
func parseCobertura(r io.Reader) (Coverage, error) {
	d := xml.NewDecoder(r)
	d.Entity = xml.HTMLEntity
	var (
		depth      int
		classDepth int // depth of the enclosing <class>, 0 outside one
		classFile  string
		useAttrs   bool
		c          = Coverage{Format: "cobertura"}
		lines      = make(map[lineKey]bool)
	)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return Coverage{}, errors.New("not Cobertura XML: no root element")
		}
		if err != nil {
			return Coverage{}, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			depth++
			switch name := tok.Name.Local; {
			case depth == 1:
				if name != "coverage" {
					return Coverage{}, fmt.Errorf("not Cobertura XML: root element is <%s>, want <coverage>", name)
				}
				if useAttrs, err = rootCounts(tok, &c); err != nil {
					return Coverage{}, err
				}
			case useAttrs:
				// The totals are known; only check the rest is well-formed.
			case name == "class" && classDepth == 0:
				classDepth = depth
				if classFile = attr(tok, "filename"); classFile == "" {
					classFile = attr(tok, "name")
				}
			case name == "line" && classDepth > 0:
				if err := addLine(lines, classFile, tok); err != nil {
					return Coverage{}, err
				}
			}
		case xml.EndElement:
			if depth == classDepth {
				classDepth = 0
			}
			depth--
			if depth > 0 {
				continue
			}
			if useAttrs {
				return c, nil
			}
			if len(lines) == 0 {
				return Coverage{}, errors.New("no line data: the <coverage> element has no lines-covered and lines-valid attributes and no <class> has <line> elements")
			}
			for _, covered := range lines {
				c.Total++
				if covered {
					c.Covered++
				}
			}
			return c, nil
		}
	}
}

// rootCounts reads lines-covered and lines-valid from the root element,
// reporting whether both were present.
func rootCounts(root xml.StartElement, c *Coverage) (bool, error) {
	covered, ok1 := attrOK(root, "lines-covered")
	valid, ok2 := attrOK(root, "lines-valid")
	if !ok1 || !ok2 {
		return false, nil
	}
	var err error
	if c.Covered, err = strconv.ParseInt(strings.TrimSpace(covered), 10, 64); err != nil || c.Covered < 0 {
		return false, fmt.Errorf("invalid lines-covered attribute %q", covered)
	}
	if c.Total, err = strconv.ParseInt(strings.TrimSpace(valid), 10, 64); err != nil || c.Total < 0 {
		return false, fmt.Errorf("invalid lines-valid attribute %q", valid)
	}
	if c.Covered > c.Total {
		return false, fmt.Errorf("lines-covered %d is more than lines-valid %d", c.Covered, c.Total)
	}
	return true, nil
}

// addLine records a <line number="N" hits="H"> element of file.
func addLine(lines map[lineKey]bool, file string, el xml.StartElement) error {
	number := strings.TrimSpace(attr(el, "number"))
	if number == "" {
		return nil // not a source line we can identify
	}
	hitsAttr := attr(el, "hits")
	hits, err := strconv.ParseFloat(strings.TrimSpace(hitsAttr), 64)
	if err != nil {
		return fmt.Errorf("%s line %s: invalid hits attribute %q", file, number, hitsAttr)
	}
	k := lineKey{file, number}
	lines[k] = lines[k] || hits > 0
	return nil
}
