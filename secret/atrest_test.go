package secret

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, to look at the table behind the store's back

	"github.com/drover-cd/drover/internal/pgtest"
	"github.com/drover-cd/drover/store/sqlstore"
)

// distinctiveValues are set through a Vault, then looked for where the store keeps its
// data: none may be found there, nor the random tag each holds.
func distinctiveValues() (tag string, vals [][]byte) {
	tag = strings.ToLower(rand.Text())
	return tag, [][]byte{
		[]byte("plaintext-never-at-rest-" + tag),
		[]byte("second " + tag + " value with spaces\nand a second line"),
		[]byte(strings.Repeat("Z", 100) + tag),
	}
}

// needles are what must not be found: each value, and the tag, also as PostgreSQL
// shows bytea (hex).
func needles(tag string, vals [][]byte) [][]byte {
	out := [][]byte{[]byte(tag), []byte(hex.EncodeToString([]byte(tag)))}
	for _, v := range vals {
		out = append(out, v, []byte(hex.EncodeToString(v)))
	}
	return out
}

// setAll sets each value, twice (two versions), in several scopes.
func setAll(t *testing.T, v *Vault, vals [][]byte) {
	t.Helper()
	keys := []Key{{Name: "DB_PASSWORD", Project: "shop", Environment: "staging"}, {Name: "API_KEY"}, {Name: "TOKEN", Project: "web"}}
	for round := range 2 {
		for i, val := range vals {
			if _, err := v.Set(t.Context(), keys[i], val, "", "rita"); err != nil {
				t.Fatalf("Set round %d: %v", round, err)
			}
		}
	}
}

// No value is in the SQLite file, its write-ahead log or its shared memory, looked at
// before any checkpoint (while the store is open, the WAL holds every write).
func TestNoPlaintextInTheSQLiteFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "drover.db")
	st, err := sqlstore.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	v := NewVault(st, openKeyring(t, filepath.Join(dir, "secret.key")))
	tag, vals := distinctiveValues()
	setAll(t, v, vals)

	// The store still works and holds them, for Resolve only.
	got, err := v.Resolve(t.Context(), Request{Names: []string{"API_KEY"}, Project: "x", Branch: "main"})
	if err != nil || len(got) != 1 || got[0] != "API_KEY="+string(vals[1]) {
		t.Fatalf("Resolve = %q, %v", got, err)
	}
	// The writes are in the WAL, where names are found as they are: looking works.
	wal, err := os.ReadFile(path + "-wal")
	if err != nil || !bytes.Contains(wal, []byte("DB_PASSWORD")) {
		t.Fatalf("the write-ahead log does not hold the secrets' names (%v): the test would prove nothing", err)
	}
	for _, file := range []string{path, path + "-wal", path + "-shm"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("read %s: %v", file, err)
		}
		for _, needle := range needles(tag, vals) {
			if bytes.Contains(data, needle) {
				t.Errorf("%s holds %q", filepath.Base(file), needle)
			}
		}
	}
}

// No value is in any row of PostgreSQL's secrets or audit tables.
func TestNoPlaintextInPostgreSQL(t *testing.T) {
	dsn, schema := pgtest.Schema(t)
	admin, err := sql.Open("pgx", pgtest.Base(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	st, err := sqlstore.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	v := NewVault(st, openKeyring(t, filepath.Join(t.TempDir(), "secret.key")))
	tag, vals := distinctiveValues()
	setAll(t, v, vals)

	for _, table := range []string{"secrets", "audit"} {
		// Every column of every row, as text (bytea as hex) and as the raw bytes.
		rows, err := admin.QueryContext(t.Context(), `SELECT t::text FROM `+schema+`.`+table+` t`)
		if err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		n, named := 0, false
		for rows.Next() {
			var row string
			if err := rows.Scan(&row); err != nil {
				t.Fatal(err)
			}
			n++
			named = named || strings.Contains(row, "DB_PASSWORD")
			for _, needle := range needles(tag, vals) {
				if strings.Contains(row, string(needle)) {
					t.Errorf("a row of %s holds %q: %s", table, needle, row)
				}
			}
		}
		rows.Close()
		if !named {
			t.Errorf("no row of %s (%d rows) names DB_PASSWORD: the test would prove nothing", table, n)
		}
	}
	var cts [][]byte
	rows, err := admin.QueryContext(t.Context(), `SELECT ciphertext FROM `+schema+`.secrets`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var ct []byte
		rows.Scan(&ct)
		cts = append(cts, ct)
	}
	rows.Close()
	if len(cts) != len(vals) {
		t.Errorf("%d ciphertexts, want %d", len(cts), len(vals))
	}
	for _, ct := range cts {
		for _, needle := range needles(tag, vals) {
			if bytes.Contains(ct, needle) {
				t.Errorf("a ciphertext holds %q", needle)
			}
		}
	}
}
