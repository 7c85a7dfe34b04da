package tlsca

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCAIsMadeOnceAndReusedAcrossOpens(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	first, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	second, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.CertPEM(), second.CertPEM()) {
		t.Error("a second Open made a new CA: every node trusting the first would stop trusting the server")
	}
	onDisk, err := ReadCert(dir)
	if err != nil || !bytes.Equal(onDisk, first.CertPEM()) {
		t.Errorf("ReadCert: %v, same as the CA's: %v", err, bytes.Equal(onDisk, first.CertPEM()))
	}
	cert, err := x509.ParseCertificate(first.cert.Raw)
	if err != nil || !cert.IsCA {
		t.Fatalf("not a CA certificate: %v", err)
	}
	if life := cert.NotAfter.Sub(time.Now()); life < CAValidity-2*time.Hour || life > CAValidity {
		t.Errorf("the CA is valid for %v more, want about 10 years", life)
	}
}

func TestCAFilesArePrivate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.ServerCert([]string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{KeyFile, CertFile, ServerKeyFile, ServerCertFile} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, info.Mode().Perm())
		}
	}
	if info, err := os.Stat(dir); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("the CA folder: %v, %v; want mode 0700", info.Mode().Perm(), err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	if len(left) > 0 {
		t.Errorf("temp files left: %v", left)
	}
}

func TestCorruptCAKeyIsRefusedNamingTheFile(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, KeyFile)
	if err := os.WriteFile(keyPath, []byte("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir)
	if err == nil || !strings.Contains(err.Error(), keyPath) || !strings.Contains(err.Error(), "restore it from a backup") {
		t.Fatalf("a corrupt ca.key: %v; want an error naming %s and what to do", err, keyPath)
	}
	if got, _ := ReadCert(dir); !bytes.Equal(got, ca.CertPEM()) {
		t.Error("the CA certificate was replaced after its key was found corrupt")
	}

	// A key without its certificate is refused too, not taken for a fresh start.
	if err := os.Remove(filepath.Join(dir, CertFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, CertFile)) {
		t.Errorf("ca.key without ca.crt: %v; want an error naming ca.crt", err)
	}
}

func TestUnreadableCAKeyIsRefused(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	// A folder in its place: unreadable as a file, for root too (mode 0000 is not).
	keyPath := filepath.Join(dir, KeyFile)
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(keyPath, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir)
	if err == nil || !strings.Contains(err.Error(), "read the CA key "+keyPath) || !strings.Contains(err.Error(), "restore it from a backup") {
		t.Errorf("an unreadable ca.key: %v; want an error naming %s and what to do", err, keyPath)
	}
}

func TestReadCertWithoutCA(t *testing.T) {
	t.Parallel()
	if _, err := ReadCert(t.TempDir()); !errors.Is(err, ErrNoCA) {
		t.Errorf("ReadCert of an empty folder: %v, want ErrNoCA", err)
	}
}

func TestCAReusesServerCertForTheSameHostsAndReissuesForOthers(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	first, issued, err := ca.ServerCert([]string{"10.0.0.1", "127.0.0.1", "::1", "localhost"})
	if err != nil || !issued {
		t.Fatalf("first ServerCert: issued %v, %v", issued, err)
	}
	if first.Leaf.NotAfter.Sub(time.Now()) < ServerValidity-2*time.Hour {
		t.Errorf("the server certificate ends %v, want a year from now", first.Leaf.NotAfter)
	}
	// Same hosts, another order and form: reused, also by a CA opened anew.
	again, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	same, issued, err := again.ServerCert([]string{"LOCALHOST", "[::1]", "127.0.0.1", "10.0.0.1", "127.0.0.1"})
	if err != nil || issued || !bytes.Equal(same.Certificate[0], first.Certificate[0]) {
		t.Errorf("same hosts: issued %v, %v; want the certificate reused", issued, err)
	}
	// Another advertised address: a new certificate that names it.
	moved, issued, err := again.ServerCert([]string{"10.0.0.2", "127.0.0.1", "::1", "localhost", "drover.example"})
	if err != nil || !issued || bytes.Equal(moved.Certificate[0], first.Certificate[0]) {
		t.Fatalf("other hosts: issued %v, %v; want a new certificate", issued, err)
	}
	for _, host := range []string{"10.0.0.2", "drover.example", "localhost", "::1"} {
		if err := moved.Leaf.VerifyHostname(host); err != nil {
			t.Errorf("the new certificate: %v", err)
		}
	}
	if err := moved.Leaf.VerifyHostname("10.0.0.1"); err == nil {
		t.Error("the new certificate still names the old address 10.0.0.1")
	}
}

func TestCAReissuesServerCertNearItsEnd(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	hosts := []string{"127.0.0.1"}
	first, _, err := ca.ServerCert(hosts)
	if err != nil {
		t.Fatal(err)
	}
	ca.now = func() time.Time { return time.Now().Add(ServerValidity - RenewBefore + time.Hour) }
	later, issued, err := ca.ServerCert(hosts)
	if err != nil || !issued || bytes.Equal(later.Certificate[0], first.Certificate[0]) {
		t.Errorf("29 days before its end: issued %v, %v; want a new certificate", issued, err)
	}
}

func TestServerCertIsTrustedThroughTheCAOnly(t *testing.T) {
	t.Parallel()
	ca, err := Open(filepath.Join(t.TempDir(), "ca"))
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := ca.ServerCert([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }),
		ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)} // refused handshakes are the point
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	url := "https://" + ln.Addr().String() + "/"

	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca.CertPEM()) {
		t.Fatal("the CA's PEM holds no certificate")
	}
	trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := trusting.Get(url)
	if err != nil {
		t.Fatalf("a client trusting the CA: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" {
		t.Errorf("answer %q", body)
	}

	_, err = (&http.Client{Transport: &http.Transport{}}).Get(url)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("a client with the system roots: %v; want an unknown authority", err)
	}
	// A name the certificate does not hold is refused, trusted CA or not.
	_, err = tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost"})
	var wrongHost x509.HostnameError
	if !errors.As(err, &wrongHost) {
		t.Errorf("localhost, which the certificate does not name: %v; want a hostname error", err)
	}
}
