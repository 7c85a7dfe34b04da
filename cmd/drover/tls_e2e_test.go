package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drover-cd/drover/internal/tlsca"
)

var listeningTLS = regexp.MustCompile(`msg="drover server listening over TLS" url=(https://\S+)`)

// tlsURL waits for the server's log to say where it serves TLS and returns that URL.
func (s *testServer) tlsURL() string {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := listeningTLS.FindStringSubmatch(s.log.String()); m != nil {
			return m[1]
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.t.Fatalf("the server never said where it serves TLS:\n%s", s.log)
	return ""
}

// trusting is an HTTPS client that trusts exactly the certificates in pemData.
func trusting(t *testing.T, pemData string) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(pemData)) {
		t.Fatalf("no certificate in:\n%s", pemData)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// get fetches url with client and returns the status, a header and the body.
func get(t *testing.T, client *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// A Docker node trusting what drover ca printed pulls from the registry over TLS, at the
// advertised address too; a machine that trusts only the system's roots does not.
func TestTLSListenerIsTrustedThroughDroverCA(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "", "--tls-listen", "127.0.0.1:0", "--advertise", "https://10.9.8.7:8443")
	base := s.tlsURL()

	ca := drover(t, "", "ca", "--server", s.URL)
	if ca.code != 0 || !strings.HasPrefix(ca.stdout, "-----BEGIN CERTIFICATE-----") || !strings.Contains(ca.stderr, "sha256 fingerprint ") {
		t.Fatalf("drover ca:\n%s", ca)
	}
	if fromData := drover(t, "", "ca", "--data", s.Data); fromData.code != 0 || fromData.stdout != ca.stdout {
		t.Errorf("drover ca --data prints another certificate than the server:\n%s", fromData)
	}
	fp := strings.TrimSpace(strings.TrimPrefix(ca.stderr, "sha256 fingerprint "))
	if !strings.Contains(s.log.String(), "ca_sha256="+fp) {
		t.Errorf("the server's log does not give the fingerprint drover ca printed (%s):\n%s", fp, s.log)
	}

	client := trusting(t, ca.stdout)
	resp, body := get(t, client, base+"/v2/")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("GET /v2/ over TLS without credentials: %d %q %s; want 401 and a Bearer challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
	if resp.TLS == nil {
		t.Fatal("the answer did not come over TLS")
	}
	leaf := resp.TLS.PeerCertificates[0]
	for _, host := range []string{"10.9.8.7", "127.0.0.1", "::1", "localhost"} {
		if err := leaf.VerifyHostname(host); err != nil {
			t.Errorf("the listener's certificate: %v", err)
		}
	}

	_, err := (&http.Client{Timeout: 10 * time.Second}).Get(base + "/v2/")
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("a client trusting the system roots only: %v; want the certificate refused (unknown authority)", err)
	}

	// drover ca pointed at the TLS listener itself says how to get the CA instead.
	if r := drover(t, "", "ca", "--server", base); r.code == 0 || !strings.Contains(r.stderr, "does not trust yet") || !strings.Contains(r.stderr, "--data") {
		t.Errorf("drover ca over untrusted TLS: want a refusal saying what to do:\n%s", r)
	}
}

// The CA certificate is public: it is given without a token, on both listeners.
func TestCARouteNeedsNoToken(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "", "--tls-listen", "127.0.0.1:0")
	resp, body := get(t, http.DefaultClient, s.URL+"/api/v1/ca")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("GET /api/v1/ca without a token: %d %s", resp.StatusCode, body)
	}
	onDisk, err := os.ReadFile(filepath.Join(s.Data, "ca", "ca.crt"))
	if err != nil || string(onDisk) != body {
		t.Errorf("the route answers another certificate than DATA/ca/ca.crt (%v)", err)
	}
	if resp, _ := get(t, trusting(t, body), s.tlsURL()+"/api/v1/ca"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /api/v1/ca over TLS: %d", resp.StatusCode)
	}
	if info, err := os.Stat(filepath.Join(s.Data, "ca", "ca.key")); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("DATA/ca/ca.key: %v; want mode 0600", err)
	}
}

// With the operator's own certificate the server has no CA: the listener serves that
// certificate, and drover ca says there is none to print.
func TestCAOfServerWithOwnCertificateIsNone(t *testing.T) {
	t.Parallel()
	own := filepath.Join(t.TempDir(), "own")
	ownCA, err := tlsca.Open(own)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ownCA.ServerCert([]string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), "", "--tls-listen", "127.0.0.1:0",
		"--tls-cert", filepath.Join(own, tlsca.ServerCertFile), "--tls-key", filepath.Join(own, tlsca.ServerKeyFile))
	if resp, _ := get(t, trusting(t, string(ownCA.CertPEM())), s.tlsURL()+"/v2/"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v2/ over TLS with the operator's certificate: %d, want 401", resp.StatusCode)
	}
	resp, body := get(t, http.DefaultClient, s.URL+"/api/v1/ca")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "--tls-cert") {
		t.Errorf("GET /api/v1/ca: %d %s; want 404 saying the operator's certificate is served", resp.StatusCode, body)
	}
	if r := drover(t, "", "ca", "--server", s.URL); r.code == 0 || r.stdout != "" || !strings.Contains(r.stderr, "no certificate authority of its own") {
		t.Errorf("drover ca of a server with its own certificate:\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(s.Data, "ca")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a CA was made in DATA/ca though the operator gave a certificate: %v", err)
	}
}

// A new server on the data folder takes the TLS listener over, and serves the same
// certificate on it.
func TestTLSListenerIsHandedOverInAnUpgrade(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "", "--tls-listen", "127.0.0.1:0")
	base := s.tlsURL()
	client := trusting(t, drover(t, "", "ca", "--data", s.Data).stdout)
	before, _ := get(t, client, base+"/v2/")

	next := &testServer{t: t, Data: s.Data, log: &syncBuffer{}}
	next.start("--tls-listen", "127.0.0.1:0")
	if got := next.tlsURL(); got != base {
		t.Errorf("the new server serves TLS on %s, the old one did on %s", got, base)
	}
	exited := make(chan error, 1)
	go func() { exited <- s.cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("the old server did not exit after the handover:\n%s", s.log)
	}
	client.CloseIdleConnections() // what the old server accepted is gone with it
	after, _ := get(t, client, base+"/v2/")
	if after.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v2/ over TLS after the upgrade: %d, want 401", after.StatusCode)
	}
	if string(after.TLS.PeerCertificates[0].Raw) != string(before.TLS.PeerCertificates[0].Raw) {
		t.Error("the new server issued another certificate for the same hosts")
	}
}

// Flags that cannot work are refused before anything starts, saying what to do.
func TestTLSAndAdvertiseFlagsAreRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-listen", "127.0.0.1:0", "--tls-cert", "cert.pem"}, "--tls-cert and --tls-key go together: give both"},
		{[]string{"--tls-listen", "127.0.0.1:0", "--tls-key", "key.pem"}, "--tls-cert and --tls-key go together: give both"},
		{[]string{"--advertise", "ftp://x"}, "--advertise ftp://x: give an http:// or https:// URL, e.g. https://"},
		{[]string{"--advertise", "https://h:1"}, "--advertise https://h:1 is https, but the server serves no TLS: also give --tls-listen"},
		{[]string{"--advertise", "https://10.0.0.1:8443/drover", "--tls-listen", "127.0.0.1:0"}, "without a path or query"},
		{[]string{"--advertise", "http://:8080"}, "give a host"},
		{[]string{"--tls-listen", "127.0.0.1:0", "--tls-cert", "missing.pem", "--tls-key", "missing.key"}, "--tls-cert missing.pem"},
	} {
		data := t.TempDir()
		args := append([]string{"server", "--data", data, "--listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0",
			"--step-uids", "off", "--service-uids", "off"}, tc.args...)
		r := drover(t, data, args...)
		if r.code != exitBadInput || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("drover server %v: want exit 2 and %q:\n%s", tc.args, tc.want, r)
		}
	}
}

func TestCAHelpShowsTheCertsDStep(t *testing.T) {
	t.Parallel()
	r := drover(t, t.TempDir(), "ca", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "/etc/docker/certs.d/10.0.0.1:8443/ca.crt") || !strings.Contains(r.stdout, "--data") {
		t.Errorf("drover ca --help:\n%s", r)
	}
}

func TestCAFromDataFolderWithoutOne(t *testing.T) {
	t.Parallel()
	r := drover(t, t.TempDir(), "ca", "--data", t.TempDir())
	if r.code != exitBadInput || r.stdout != "" || !strings.Contains(r.stderr, "has no CA: a server makes one when started with --tls-listen") {
		t.Errorf("drover ca --data of a folder without a CA:\n%s", r)
	}
}

// A new server whose CA cannot be opened is refused before it asks the running one for
// its sockets: the running server goes on serving, and the CA is left for the operator.
func TestCorruptCAKeepsTheRunningServerInAnUpgrade(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "", "--tls-listen", "127.0.0.1:0")
	keyPath := filepath.Join(s.Data, "ca", "ca.key")
	if err := os.WriteFile(keyPath, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := drover(t, "", "server", "--data", s.Data, "--listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0",
		"--step-uids", "off", "--service-uids", "off", "--tls-listen", "127.0.0.1:0")
	if r.code == 0 || !strings.Contains(r.stderr, keyPath) || !strings.Contains(r.stderr, "restore it from a backup") {
		t.Errorf("a server with a corrupt ca.key: want a refusal naming %s and what to do:\n%s", keyPath, r)
	}
	if resp, _ := get(t, http.DefaultClient, s.URL+"/healthz"); resp.StatusCode != http.StatusOK {
		t.Errorf("the running server after the refused upgrade: /healthz %d", resp.StatusCode)
	}
	if data, _ := os.ReadFile(keyPath); string(data) != "not a key\n" {
		t.Error("the corrupt ca.key was replaced")
	}
}
