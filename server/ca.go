package server

import "net/http"

// caCert answers the certificate of the server's own certificate authority (PEM), which
// nodes put in /etc/docker/certs.d/HOST:PORT/ca.crt to pull from the registry over TLS.
// It is public, as a CA certificate is; a server without a CA of its own answers 404.
func (s *Server) caCert(w http.ResponseWriter, r *http.Request) {
	if len(s.cfg.CA) == 0 {
		s.errorJSON(w, http.StatusNotFound, "this server has no certificate authority of its own: it serves TLS with the operator's certificate (--tls-cert), "+
			"whose issuer nodes trust instead, or no TLS at all (start it with --tls-listen to make one)")
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(s.cfg.CA)
}
