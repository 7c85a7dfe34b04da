package source

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Commit is what CommitInfo tells about a commit.
type Commit struct {
	Hash    string    // full hash
	Subject string    // first line of the message
	Author  string    // "Name <email>"
	Time    time.Time // author date, in the author's time zone
}

// CheckoutCommit makes dest a git working tree with HEAD detached at exactly commit (a full
// or abbreviated hash; a tag works too). dest must not exist or be an empty folder; when
// CheckoutCommit fails it leaves dest as it found it.
//
// dest borrows repoDir's objects (git clone --shared) instead of copying them: it is fast,
// but it stays valid only while repoDir keeps those objects. Do not prune repoDir (git gc
// --prune=now) while checkouts made from it are in use; a plain git gc keeps unreachable
// objects for two weeks. The checkout has repoDir's branches as origin/* and its tags.
//
// (The name Checkout is taken by the type Local returns.)
func CheckoutCommit(ctx context.Context, repoDir, commit, dest string) error {
	return checkout(ctx, repoDir, commit, dest, "--shared")
}

// CheckoutCopy is CheckoutCommit with repoDir's objects copied into dest, not borrowed:
// slower, but dest then works for a user who cannot read repoDir.
func CheckoutCopy(ctx context.Context, repoDir, commit, dest string) error {
	return checkout(ctx, repoDir, commit, dest, "--no-hardlinks")
}

// checkout clones repoDir into dest with how ("--shared" or "--no-hardlinks") and checks
// commit out.
func checkout(ctx context.Context, repoDir, commit, dest, how string) error {
	if err := checkRev(commit); err != nil {
		return err
	}
	existed := false
	if entries, err := os.ReadDir(dest); err == nil {
		if len(entries) > 0 {
			return fmt.Errorf("checkout into %s: folder is not empty", dest)
		}
		existed = true
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("checkout into %s: %w", dest, err)
	}
	// --template=: no sample hooks, which a workspace has no use for.
	_, err := runGit(ctx, "", nil, nil, "clone", "--quiet", "--no-checkout", how, "--template=", "--", repoDir, dest)
	if err == nil {
		_, err = runGit(ctx, dest, nil, nil, "checkout", "--quiet", "--detach", commit+"^{commit}")
	}
	if err != nil {
		if existed {
			emptyDir(dest)
		} else {
			os.RemoveAll(dest)
		}
		return err
	}
	return nil
}

// emptyDir removes what is inside dir, best effort.
func emptyDir(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// ErrFileTooLarge is what a *FileTooLargeError matches with errors.Is.
var ErrFileTooLarge = errors.New("file is too large")

// FileTooLargeError is a file ReadFileLimit refused, unread, for its size.
type FileTooLargeError struct {
	File  string // the path in the commit
	Size  int64  // bytes
	Limit int64  // bytes
}

// Error reads like "drover.yml: file is 2097152 bytes; the limit is 1 MiB".
func (e *FileTooLargeError) Error() string {
	return fmt.Sprintf("%s: file is %d bytes; the limit is %s", e.File, e.Size, byteSize(e.Limit))
}

// Unwrap makes the error match ErrFileTooLarge.
func (e *FileTooLargeError) Unwrap() error { return ErrFileTooLarge }

// byteSize writes a limit the way people read it: 1 MiB, 64 KiB or 1000 bytes.
func byteSize(n int64) string {
	switch {
	case n > 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n > 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// ReadFileLimit returns the content of file (a slash-separated path from the repository
// root) in commit, of at most limit bytes; a negative limit is none. When commit has no
// file there the error wraps fs.ErrNotExist; an unknown commit is a different error.
// A larger file is refused with a *FileTooLargeError from the size git announces before
// the content, which is never read: a push of a huge drover.yml costs the server nothing.
func ReadFileLimit(ctx context.Context, repoDir, commit, file string, limit int64) ([]byte, error) {
	if err := checkRev(commit); err != nil {
		return nil, err
	}
	file = strings.TrimPrefix(path.Clean("/"+file), "/")
	if strings.ContainsAny(commit+file, "\n\r") {
		return nil, fmt.Errorf("read %s:%s: newline in name", commit, file)
	}
	// One git process answers both questions, exactly and without parsing messages meant
	// for people: does the commit exist, and what is at the path? Each line of the batch
	// protocol gets "<hash> <type> <size>\n<content>\n" or "<name> missing\n". The
	// answers are read as git writes them, so the size comes before any of the content.
	in := commit + "^{commit}\n" + commit + ":" + file + "\n"
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", "cat-file", "--batch")
	cmd.Dir = repoDir
	cmd.Stdin = strings.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		return nil, fmt.Errorf("git cat-file --batch: %w", err)
	}
	content, err := readAnswers(bufio.NewReader(stdout), commit, file, limit)
	if err != nil {
		cancel() // the rest of the answer is not wanted: stop git rather than read it
	}
	if werr := cmd.Wait(); werr != nil && (err == nil || errors.Is(err, errAnswer)) {
		// git failed, and says why on stderr.
		return nil, fmt.Errorf("git cat-file --batch: %w: %s", werr, strings.TrimSpace(stderr.String()))
	}
	return content, err
}

// readAnswers reads git cat-file --batch's answers for commit^{commit} and commit:file.
func readAnswers(r *bufio.Reader, commit, file string, limit int64) ([]byte, error) {
	_, size, err := batchHeader(r)
	if err == nil {
		_, err = io.CopyN(io.Discard, r, size+1) // the commit and the newline after it
		if err != nil {
			err = fmt.Errorf("%w: short object: %w", errAnswer, err)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("read %s:%s: commit %s: %w", commit, file, commit, err)
	}
	typ, size, err := batchHeader(r)
	switch {
	case errors.Is(err, errMissing):
		return nil, fmt.Errorf("read %s:%s: %w", commit, file, fs.ErrNotExist)
	case err != nil:
		return nil, fmt.Errorf("read %s:%s: %w", commit, file, err)
	case typ != "blob":
		return nil, fmt.Errorf("read %s:%s: not a file but a %s", commit, file, typ)
	case limit >= 0 && size > limit:
		return nil, &FileTooLargeError{File: file, Size: size, Limit: limit}
	}
	content := make([]byte, size+1) // and the newline after it
	if _, err := io.ReadFull(r, content); err != nil {
		return nil, fmt.Errorf("read %s:%s: %w: short object: %w", commit, file, errAnswer, err)
	}
	return content[:size], nil
}

var (
	errMissing = errors.New("not found")
	// errAnswer marks an answer of git cat-file --batch cut short or not understood: git
	// failed, and its own error says why.
	errAnswer = errors.New("git cat-file --batch")
)

// batchHeader reads the first line of one answer of git cat-file --batch: the object's
// type and size. The content follows it.
func batchHeader(r *bufio.Reader) (typ string, size int64, err error) {
	header, err := r.ReadString('\n')
	if err != nil {
		return "", 0, fmt.Errorf("%w: short answer: %w", errAnswer, err)
	}
	header = strings.TrimSuffix(header, "\n")
	if strings.HasSuffix(header, " missing") { // "<name> missing"; the name may hold spaces
		return "", 0, errMissing
	}
	f := strings.Fields(header)
	if len(f) != 3 {
		return "", 0, fmt.Errorf("%w: %q", errAnswer, header)
	}
	size, err = strconv.ParseInt(f[2], 10, 64)
	if err != nil || size < 0 {
		return "", 0, fmt.Errorf("%w: bad size in %q", errAnswer, header)
	}
	return f[1], size, nil
}

// CommitInfo returns the hash, subject, author and author date of commit.
func CommitInfo(ctx context.Context, repoDir, commit string) (Commit, error) {
	if err := checkRev(commit); err != nil {
		return Commit{}, err
	}
	out, err := runGit(ctx, repoDir, nil, nil, "show", "--no-patch", "--no-show-signature",
		"--format=%H%x00%an <%ae>%x00%aI%x00%s", commit+"^{commit}", "--")
	if err != nil {
		return Commit{}, err
	}
	f := strings.SplitN(strings.TrimSuffix(string(out), "\n"), "\x00", 4)
	if len(f) != 4 {
		return Commit{}, fmt.Errorf("git show %s: unexpected output %q", commit, out)
	}
	t, err := time.Parse(time.RFC3339, f[2])
	if err != nil {
		return Commit{}, fmt.Errorf("git show %s: author date: %w", commit, err)
	}
	return Commit{Hash: f[0], Author: f[1], Time: t, Subject: f[3]}, nil
}

// ChangedFiles lists the files that differ between commits old and new, as paths relative to
// the repository root; a renamed file is listed under both names. When old is "" or all
// zeros (a new branch) it lists what new changed against its first parent, or every file of
// new when new has no parent. Both commits must be in repoDir. Between unrelated commits
// (after a forced push) it lists every file whose content differs.
func ChangedFiles(ctx context.Context, repoDir, old, new string) ([]string, error) {
	if err := checkRev(new); err != nil {
		return nil, err
	}
	args := []string{"diff-tree", "-r", "--name-only", "-z", "--no-commit-id", "--no-renames"}
	if isZeroHash(old) {
		// --root: a first commit against the empty tree. --diff-merges: a merge against its
		// first parent, which is what the merge brought into the branch.
		args = append(args, "--root", "--diff-merges=first-parent", new+"^{commit}")
	} else {
		if err := checkRev(old); err != nil {
			return nil, err
		}
		args = append(args, old+"^{commit}", new+"^{commit}")
	}
	out, err := runGit(ctx, repoDir, nil, nil, append(args, "--")...)
	if err != nil {
		return nil, err
	}
	return splitZ(string(out)), nil
}

// isZeroHash reports whether h is "" or git's all-zeros hash, which webhooks and hooks use
// for "no commit".
func isZeroHash(h string) bool {
	return strings.Trim(h, "0") == ""
}

// checkRev refuses revisions git would take for an option.
func checkRev(rev string) error {
	if rev == "" || strings.HasPrefix(rev, "-") {
		return fmt.Errorf("bad revision %q", rev)
	}
	return nil
}

// runGit runs git in dir (the process's folder when "") with stdin and env added to the
// environment, and returns its standard output. The error names the command and carries
// git's stderr.
func runGit(ctx context.Context, dir string, stdin io.Reader, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Stdin = stdin
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}
