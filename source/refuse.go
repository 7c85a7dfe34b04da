package source

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// headRecorder keeps the first bytes read through it: the start of a push request, where
// git names the capabilities it wants.
type headRecorder struct {
	r    io.Reader
	head []byte
}

// headSize is enough for the first pkt-line of a push: old and new hash, a ref name and
// the capabilities after a NUL.
const headSize = 4096

func (h *headRecorder) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if room := headSize - len(h.head); room > 0 {
		h.head = append(h.head, p[:min(n, room)]...)
	}
	return n, err
}

// sideBand reports whether the push that starts with head asked for a side-band stream:
// its first pkt-line, after a NUL, lists side-band-64k or side-band.
func sideBand(head []byte) bool {
	if len(head) < 4 {
		return false
	}
	n, err := strconv.ParseUint(string(head[:4]), 16, 16)
	if err != nil || n < 4 {
		return false
	}
	line := head[4:min(int(n), len(head))]
	_, caps, ok := bytes.Cut(line, []byte{0})
	if !ok {
		return false
	}
	for _, c := range bytes.Fields(caps) {
		if string(c) == "side-band-64k" || string(c) == "side-band" {
			return true
		}
	}
	return false
}

// refusePush answers a push that cannot be taken with msg, in a form git shows its user.
// An HTTP error status reaches them only as "RPC failed; HTTP 507", so when the push asked
// for a side-band stream, the answer is that stream with msg on band 3, which git prints
// as "remote error: MSG"; otherwise it is status with msg as text. The rest of the request
// is read first, so that the client, which may still be sending, reads the answer rather
// than a reset connection.
func refusePush(w http.ResponseWriter, body io.Reader, head []byte, status int, msg string) {
	_, _ = io.Copy(io.Discard, body)
	if !sideBand(head) {
		http.Error(w, msg, status)
		return
	}
	w.Header().Set("Content-Type", "application/x-git-receive-pack-result")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "%04x\x03%s\n", 4+1+len(msg)+1, msg)
	_, _ = io.WriteString(w, "0000")
}
