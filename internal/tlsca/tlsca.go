// Package tlsca is the Drover server's own certificate authority, for its TLS listener.
//
// Docker Engines on other machines pull release images from the server's registry; the
// Engine talks plain HTTP to registries on 127.0.0.0/8 only, and elsewhere wants HTTPS
// it can verify. An operator without a certificate of their own lets the server make a
// CA once (kept in a folder, DATA/ca), puts its certificate on each node
// (/etc/docker/certs.d/HOST:PORT/ca.crt, see drover ca), and the server issues its
// listener's certificate from it for the hosts it is reached at, anew whenever those
// change or the certificate nears its end.
//
// The folder holds:
//
//	ca.crt      the CA's certificate (PEM), valid 10 years: what nodes trust
//	ca.key      its private key (PKCS #8 PEM)
//	server.crt  the listener's certificate (PEM), valid 1 year
//	server.key  its private key
//
// Every file is written atomically with mode 0600, in a folder of mode 0700: the folder
// lives in the server's private data folder, and the CA's certificate goes out through
// the server's API or drover ca, not through file modes. Keys are ECDSA P-256.
package tlsca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/drover-cd/drover/atomicfile"
)

// File names in the CA's folder.
const (
	CertFile       = "ca.crt"
	KeyFile        = "ca.key"
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
)

// Validity of what the CA makes, and how long before its end a server certificate is
// replaced.
const (
	CAValidity     = 10 * 365 * 24 * time.Hour
	ServerValidity = 365 * 24 * time.Hour
	RenewBefore    = 30 * 24 * time.Hour
)

// ErrNoCA is returned by ReadCert when the folder holds no CA (yet).
var ErrNoCA = errors.New("no certificate authority")

// CA is a certificate authority kept in a folder. Its methods are not safe for
// concurrent use on the same folder.
type CA struct {
	dir     string
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
	// now is the clock; time.Now unless a test sets it.
	now func() time.Time
}

// Open loads the CA kept in dir, or, when dir holds neither ca.crt nor ca.key, makes one
// there (creating dir with mode 0700). Any other state is an error that names the file
// and what to do: a CA is never replaced silently, since every node that trusts the old
// one would stop trusting the server.
func Open(dir string) (*CA, error) {
	ca := &CA{dir: dir, now: time.Now}
	certPath, keyPath := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	switch {
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		return ca, ca.create()
	case certErr != nil:
		return nil, fmt.Errorf("read the CA certificate %s: %w (restore it from a backup, or remove %s and %s to make a new CA, which every node must then trust anew)", certPath, certErr, certPath, keyPath)
	case keyErr != nil:
		return nil, fmt.Errorf("read the CA key %s: %w (restore it from a backup, or remove %s and %s to make a new CA, which every node must then trust anew)", keyPath, keyErr, certPath, keyPath)
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("the CA certificate %s is corrupt: %w (restore it from a backup, or remove %s and %s to make a new CA, which every node must then trust anew)", certPath, err, certPath, keyPath)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("the CA key %s is corrupt: %w (restore it from a backup, or remove %s and %s to make a new CA, which every node must then trust anew)", keyPath, err, certPath, keyPath)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("the CA key %s does not belong to the certificate %s (restore the pair from a backup, or remove both to make a new CA, which every node must then trust anew)", keyPath, certPath)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate (restore it from a backup, or remove %s and %s to make a new CA)", certPath, certPath, keyPath)
	}
	ca.cert, ca.certPEM, ca.key = cert, certPEM, key
	return ca, nil
}

// create makes a new CA in ca.dir. The key is written first: a crash in between leaves a
// key without a certificate, which Open refuses rather than guess.
func (ca *CA) create() error {
	if err := os.MkdirAll(ca.dir, 0o700); err != nil {
		return fmt.Errorf("make the CA folder: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("make the CA key: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return err
	}
	now := ca.now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "Drover CA " + now.UTC().Format("2006-01-02"), Organization: []string{"Drover"}},
		NotBefore:             now.Add(-time.Hour), // clocks of nodes run a little behind
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("make the CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := atomicfile.Write(filepath.Join(ca.dir, KeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(ca.dir, CertFile), certPEM, 0o600); err != nil {
		return err
	}
	ca.cert, ca.certPEM, ca.key = cert, certPEM, key
	return nil
}

// CertPEM is the CA's certificate, PEM-encoded: what nodes trust.
func (ca *CA) CertPEM() []byte { return ca.certPEM }

// Fingerprint is the SHA-256 of the CA certificate, as hex pairs joined by colons, for
// a person to compare what a node got with what the server has.
func (ca *CA) Fingerprint() string { return Fingerprint(ca.cert.Raw) }

// Dir is the folder the CA is kept in.
func (ca *CA) Dir() string { return ca.dir }

// ReadCert returns the PEM certificate of the CA kept in dir, checked to be one, without
// opening its key; ErrNoCA when dir holds none.
func ReadCert(dir string) ([]byte, error) {
	path := filepath.Join(dir, CertFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoCA)
	}
	if err != nil {
		return nil, fmt.Errorf("read the CA certificate: %w", err)
	}
	if _, err := parseCert(data); err != nil {
		return nil, fmt.Errorf("the CA certificate %s is corrupt: %w", path, err)
	}
	return data, nil
}

// Fingerprint is the SHA-256 of a DER certificate as upper-case hex pairs joined by
// colons (as openssl x509 -fingerprint -sha256 prints it).
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	pairs := make([]string, len(sum))
	for i, b := range sum {
		pairs[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(pairs, ":")
}

// parseCert parses the first PEM certificate in data.
func parseCert(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate in it")
	}
	return x509.ParseCertificate(block.Bytes)
}

// parseKey parses a PEM ECDSA private key (PKCS #8, or SEC 1 as openssl writes it).
func parseKey(data []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM key in it")
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T key, not ECDSA", k)
	}
	return ec, nil
}

// encodeKey is key as PKCS #8 PEM.
func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode a key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// serial is a random 128-bit certificate serial number (RFC 5280 4.1.2.2: positive, at
// most 20 octets).
func serial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("make a serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}
