package tlsca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/drover-cd/drover/atomicfile"
)

// ServerCert returns the TLS listener's certificate for hosts (IP addresses become IP
// SANs, names DNS SANs), with the CA's certificate after it in the chain. The one in the
// folder (server.crt, server.key) is reused while this CA signed it, it names exactly
// these hosts and has more than RenewBefore left; otherwise a new one is issued and
// written there, and issued is true. A server certificate that is missing or corrupt is
// simply issued anew: nodes trust the CA, not it.
func (ca *CA) ServerCert(hosts []string) (cert tls.Certificate, issued bool, err error) {
	ips, names, err := splitHosts(hosts)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	certPath, keyPath := filepath.Join(ca.dir, ServerCertFile), filepath.Join(ca.dir, ServerKeyFile)
	if c, ok, err := ca.current(certPath, keyPath, ips, names); err != nil || ok {
		return c, false, err
	}
	c, err := ca.issue(certPath, keyPath, ips, names)
	return c, err == nil, err
}

// current is the server certificate in the folder when it may be reused (ok).
func (ca *CA) current(certPath, keyPath string, ips []net.IP, names []string) (tls.Certificate, bool, error) {
	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, fs.ErrNotExist) {
		return tls.Certificate{}, false, nil
	}
	if err != nil {
		return tls.Certificate{}, false, fmt.Errorf("read the server certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return tls.Certificate{}, false, nil
	}
	if err != nil {
		return tls.Certificate{}, false, fmt.Errorf("read the server key: %w", err)
	}
	leaf, err := parseCert(certPEM)
	if err != nil {
		return tls.Certificate{}, false, nil
	}
	key, err := parseKey(keyPEM)
	if err != nil || !key.PublicKey.Equal(leaf.PublicKey) {
		return tls.Certificate{}, false, nil
	}
	if leaf.CheckSignatureFrom(ca.cert) != nil || leaf.NotAfter.Sub(ca.now()) <= RenewBefore ||
		!sameIPs(leaf.IPAddresses, ips) || !slices.Equal(sorted(leaf.DNSNames), names) {
		return tls.Certificate{}, false, nil
	}
	return ca.chain(leaf, key), true, nil
}

// issue makes a new server certificate for ips and names and writes it to the folder.
func (ca *CA) issue(certPath, keyPath string, ips []net.IP, names []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("make the server key: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return tls.Certificate{}, err
	}
	now := ca.now()
	cn := names
	if len(cn) == 0 {
		cn = []string{ips[0].String()}
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: cn[0], Organization: []string{"Drover"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(ServerValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  ips,
		DNSNames:     names,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue the server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	// The key first: a crash in between leaves a pair that does not match, which the
	// next start issues anew.
	if err := atomicfile.Write(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := atomicfile.Write(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return tls.Certificate{}, err
	}
	return ca.chain(leaf, key), nil
}

// chain is leaf and key as a tls.Certificate that sends the CA's certificate too.
func (ca *CA) chain(leaf *x509.Certificate, key *ecdsa.PrivateKey) tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{leaf.Raw, ca.cert.Raw}, PrivateKey: key, Leaf: leaf}
}

// splitHosts parses hosts into IP addresses and DNS names, each sorted and without
// duplicates. A host may come in brackets ([::1]); names are compared in lower case.
func splitHosts(hosts []string) ([]net.IP, []string, error) {
	var ips []net.IP
	var names []string
	for _, h := range hosts {
		h = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(h), "["), "]")
		switch {
		case h == "":
			continue
		case net.ParseIP(h) != nil:
			ip := net.ParseIP(h)
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
		case strings.ContainsAny(h, " /:@"):
			return nil, nil, fmt.Errorf("%q is neither an IP address nor a host name", h)
		default:
			if n := strings.ToLower(h); !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	if len(ips) == 0 && len(names) == 0 {
		return nil, nil, errors.New("a server certificate needs at least one host")
	}
	slices.SortFunc(ips, func(a, b net.IP) int { return strings.Compare(a.String(), b.String()) })
	return ips, sorted(names), nil
}

// sameIPs says whether a and b hold the same addresses, whatever their order and form.
func sameIPs(a, b []net.IP) bool {
	if len(a) != len(b) {
		return false
	}
	for _, ip := range a {
		if !slices.ContainsFunc(b, ip.Equal) {
			return false
		}
	}
	return true
}

// sorted is a sorted copy of s, in lower case.
func sorted(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = strings.ToLower(v)
	}
	slices.Sort(out)
	return out
}
