package triggers

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/stanchhq/stanch/alert"
)

// SourceFiles says where the files a scanner's report names can be read,
// to recover what a redacted report hides. A relative path in the report is
// looked for under each of Dirs in turn ("." is the current directory); an
// absolute one is read as given. The zero value reads no file.
type SourceFiles struct {
	Dirs []string
}

// nearLines is how far from the reported line a key id is looked for: a
// key id and its secret usually sit on neighbouring lines, and the file may
// have moved a little since the scan.
const nearLines = 3

// maxSourceLine bounds one line of a scanned file.
const maxSourceLine = 1 << 20

// keyIDNear reads the file path names and returns the AWS access key id on
// line, or failing that the nearest one within nearLines of it. On the
// line itself an id that starts with prefer (the part of the secret a
// partial redaction kept) is taken first.
func (s SourceFiles) keyIDNear(path string, line int, prefer string) (string, error) {
	if path == "" || line <= 0 {
		return "", errors.New("the finding names no file and line to read the key id from")
	}
	f, err := s.open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	lines := map[int]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), maxSourceLine)
	for n := 1; sc.Scan() && n <= line+nearLines; n++ {
		if n >= line-nearLines {
			lines[n] = sc.Text()
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("%s could not be read: %w", path, err)
	}
	if _, ok := lines[line]; !ok {
		return "", fmt.Errorf("%s has no line %d (it changed since the scan?)", path, line)
	}
	ids := alert.AWSKeyID.FindAllString(lines[line], -1)
	for _, id := range ids {
		if prefer != "" && strings.HasPrefix(id, prefer) {
			return id, nil
		}
	}
	if len(ids) > 0 {
		return ids[0], nil
	}
	for d := 1; d <= nearLines; d++ {
		for _, n := range []int{line - d, line + d} {
			if id := alert.AWSKeyID.FindString(lines[n]); id != "" {
				return id, nil
			}
		}
	}
	return "", fmt.Errorf("no AWS access key id is on line %d of %s or within %d lines of it", line, path, nearLines)
}

// open returns the first file path names under Dirs.
func (s SourceFiles) open(path string) (*os.File, error) {
	var tried []string
	if filepath.IsAbs(path) {
		if len(s.Dirs) > 0 {
			tried = append(tried, path)
			if f, err := os.Open(path); err == nil {
				return f, nil
			}
		}
	} else {
		for _, dir := range s.Dirs {
			p := filepath.Join(dir, path)
			tried = append(tried, p)
			if f, err := os.Open(p); err == nil {
				return f, nil
			}
		}
	}
	if len(tried) == 0 {
		return nil, fmt.Errorf("%s is not read here: say where the scanned files are (stanch ingest --source DIR)", path)
	}
	return nil, fmt.Errorf("%s cannot be read here (tried %s): run stanch ingest where the scanned files are, or give --source DIR, the directory that was scanned", path, strings.Join(tried, ", "))
}

// tokenOn reads the file path names and returns the token of a kind stanch
// knows on line (gitleaks reports the token's own line): the one that
// starts with prefer (the part a partial redaction kept) if given, else
// the only one.
func (s SourceFiles) tokenOn(path string, line int, prefer string) (string, error) {
	if path == "" || line <= 0 {
		return "", errors.New("the finding names no file and line to read the token from")
	}
	f, err := s.open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), maxSourceLine)
	text, found := "", false
	for n := 1; !found && sc.Scan(); n++ {
		text, found = sc.Text(), n == line
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("%s could not be read: %w", path, err)
	}
	if !found {
		return "", fmt.Errorf("%s has no line %d (it changed since the scan?)", path, line)
	}
	tokens := alert.TokensIn(text)
	for _, t := range tokens {
		if prefer != "" && strings.HasPrefix(t, prefer) {
			return t, nil
		}
	}
	switch len(tokens) {
	case 0:
		return "", fmt.Errorf("no token of a kind stanch knows is on line %d of %s", line, path)
	case 1:
		return tokens[0], nil
	}
	return "", fmt.Errorf("line %d of %s holds more than one token, so which one leaked is not known", line, path)
}
