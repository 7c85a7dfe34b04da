package secret

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/drover-cd/drover/atomicfile"
)

// keySize is the length of a key: AES-256.
const keySize = 32

// Keyring encrypts and decrypts values: AES-256-GCM under the key in a file, with a
// fresh random nonce per value (prefixed to the ciphertext) and the secret's Key as
// additional data, so a ciphertext copied to another secret does not open.
//
// The key file holds the key as 64 hex digits. While a rekey is under way (see
// Vault.Rekey) a second file, PATH.new, holds the next key; the keyring then holds
// both, opens each value with the key its KeyID names, and encrypts with the new one.
type Keyring struct {
	path string

	mu      sync.RWMutex
	keys    map[string]cipher.AEAD // by key ID
	current string                 // the ID of the key new values are encrypted with
	old     string                 // while a rekey is pending: the ID of PATH's key; "" otherwise
}

// OpenKeyring opens the key file at path, making it (32 random bytes, mode 0600) when
// there is none. It refuses a key file others may read or write, or one that does not
// hold a key. When PATH.new is there too, a rekey was cut short: the keyring holds both
// keys until Vault.FinishRekey (or the next Vault.Rekey) completes it.
func OpenKeyring(path string) (*Keyring, error) {
	kr := &Keyring{path: path, keys: map[string]cipher.AEAD{}}
	key, err := readKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		if _, nerr := os.Stat(newPath(path)); nerr == nil {
			return nil, fmt.Errorf("secret key file %s is missing, but %s is there: a rekey was cut short and the key it started from is gone; "+
				"restore %s from a backup (values encrypted under it cannot be read without it)", path, newPath(path), path)
		}
		key, err = createKey(path)
	}
	if err != nil {
		return nil, err
	}
	if kr.current, err = kr.add(key); err != nil {
		return nil, err
	}
	next, err := readKey(newPath(path))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return kr, nil
	case err != nil:
		return nil, fmt.Errorf("%w (a rekey was cut short: Drover finishes it when it can read that file)", err)
	}
	id, err := kr.add(next)
	if err != nil {
		return nil, err
	}
	if id != kr.current {
		kr.old, kr.current = kr.current, id
	}
	return kr, nil
}

// newPath is where a rekey writes the next key.
func newPath(path string) string { return path + ".new" }

// ID is the ID of the key new values are encrypted with: the first 8 hex digits of the
// key's SHA-256.
func (kr *Keyring) ID() string {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	return kr.current
}

// pending reports whether a rekey is under way: PATH.new holds the key values are
// moving to.
func (kr *Keyring) pending() bool {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	return kr.old != ""
}

// keyID is a key's ID.
func keyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:4])
}

// add makes key usable and returns its ID.
func (kr *Keyring) add(key []byte) (string, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return "", err
	}
	id := keyID(key)
	kr.mu.Lock()
	kr.keys[id] = aead
	kr.mu.Unlock()
	return id, nil
}

// readKey reads the key in the file at path, refusing a file others may read or write
// or one that does not hold a key.
func readKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("secret key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secret key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("secret key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("secret key file %s has mode %04o: others may read or replace it; chmod 600 %s, "+
			"and if anyone may have read it, make a new key with drover secret rekey", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return nil, fmt.Errorf("secret key file %s: %w", path, err)
	}
	text := bytes.TrimSpace(data)
	key := make([]byte, keySize)
	if len(text) != 2*keySize || !decodes(key, text) {
		return nil, fmt.Errorf("secret key file %s holds %d bytes, not a key: a key file holds %d hex digits (%d random bytes); "+
			"restore the server's key file from a backup (without it no stored secret can be read)", path, len(data), 2*keySize, keySize)
	}
	return key, nil
}

// decodes reports whether text is the hex of a key, and decodes it into key.
func decodes(key, text []byte) bool {
	n, err := hex.Decode(key, text)
	return err == nil && n == len(key)
}

// newKey makes a random key and its file's content.
func newKey() (key, content []byte, err error) {
	key = make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return nil, nil, fmt.Errorf("make a secret key: %w", err)
	}
	return key, []byte(hex.EncodeToString(key) + "\n"), nil
}

// createKey makes a key file at path, whole or not at all, with mode 0600. Two servers
// starting at once over one data folder end up with one key: the file is linked into
// place, which fails when it exists, and then the one there is read.
func createKey(path string) ([]byte, error) {
	key, content, err := newKey()
	if err != nil {
		return nil, err
	}
	tmp, err := atomicfile.WriteTemp(filepath.Dir(path), filepath.Base(path), content, 0o600)
	if err != nil {
		return nil, fmt.Errorf("make secret key file %s: %w", path, err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		return readKey(path)
	} else if err != nil {
		return nil, fmt.Errorf("make secret key file %s: %w", path, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("make secret key file %s: %w", path, err)
	}
	return key, nil
}

// additionalData binds a ciphertext to its secret's key: each part length-prefixed, so
// no two keys give the same bytes.
func additionalData(k Key) []byte {
	b := []byte("drover secret v1\x00")
	for _, part := range []string{k.Name, k.Project, k.Environment} {
		b = binary.AppendUvarint(b, uint64(len(part)))
		b = append(b, part...)
	}
	return b
}

// encrypt seals value for the secret k under the current key; it returns the
// ciphertext (nonce first) and the key's ID.
func (kr *Keyring) encrypt(k Key, value []byte) ([]byte, string, error) {
	kr.mu.RLock()
	id, aead := kr.current, kr.keys[kr.current]
	kr.mu.RUnlock()
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(value)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, "", fmt.Errorf("encrypt %s: %w", k, err)
	}
	return aead.Seal(nonce, nonce, value, additionalData(k)), id, nil
}

// decrypt opens the ciphertext of the secret k that the key id sealed.
func (kr *Keyring) decrypt(k Key, ciphertext []byte, id string) ([]byte, error) {
	kr.mu.RLock()
	aead, ok := kr.keys[id]
	kr.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("secret %s is encrypted under key %s, which %s does not hold (it holds %s): "+
			"restore the key file the server had when it was set, or set the secret again", k, id, kr.path, kr.ID())
	}
	if len(ciphertext) < aead.NonceSize() {
		return nil, fmt.Errorf("secret %s: the stored ciphertext is cut short; set the secret again", k)
	}
	nonce, sealed := ciphertext[:aead.NonceSize()], ciphertext[aead.NonceSize():]
	value, err := aead.Open(nil, nonce, sealed, additionalData(k))
	if err != nil {
		return nil, fmt.Errorf("secret %s does not decrypt with key %s: the stored value was changed or belongs to another secret; set it again", k, id)
	}
	return value, nil
}

// beginRekey writes a new key to PATH.new, atomically and with mode 0600, and encrypts
// new values with it from then on; PATH's key still opens the values it sealed. When a
// rekey is pending already, it carries on with that one's key.
func (kr *Keyring) beginRekey() error {
	if kr.pending() {
		return nil
	}
	key, content, err := newKey()
	if err != nil {
		return err
	}
	kr.mu.Lock()
	same := keyID(key) == kr.current
	kr.mu.Unlock()
	if same { // a 32-bit ID repeated: values would be taken for moved; draw again
		return kr.beginRekey()
	}
	if err := atomicfile.Write(newPath(kr.path), content, 0o600); err != nil {
		return fmt.Errorf("write the new secret key: %w", err)
	}
	id, err := kr.add(key)
	if err != nil {
		return err
	}
	kr.mu.Lock()
	kr.old, kr.current = kr.current, id
	kr.mu.Unlock()
	return nil
}

// commitRekey puts PATH.new in PATH's place and forgets PATH's old key: call it once
// no value is encrypted under that key any more.
func (kr *Keyring) commitRekey() error {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	if kr.old == "" {
		return nil
	}
	if err := os.Rename(newPath(kr.path), kr.path); err != nil {
		return fmt.Errorf("put the new secret key in place: %w", err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(kr.path)); err != nil {
		return fmt.Errorf("put the new secret key in place: %w", err)
	}
	delete(kr.keys, kr.old)
	kr.old = ""
	return nil
}
