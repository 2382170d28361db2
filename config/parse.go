package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// parse reads the file's text into a node tree and returns its top-level
// mapping: an empty one when the file holds no document. It reports false,
// after adding one problem, when the text is not a single YAML mapping;
// nothing else is worth checking then.
func (l *loader) parse(data []byte) (*yaml.Node, bool) {
	doc, next, err := parseDocuments(data)
	if err != nil {
		line, msg := syntaxError(err)
		// yaml.v3 reports the line where the enclosing construct starts,
		// often counted from 0, or no line at all; find the real one at
		// or after it.
		if found := findErrorLine(data, msg, max(line, 1)); found > 0 {
			line = found
		}
		// An error at the end of the text is on its last line.
		line = min(line, bytes.Count(data, []byte("\n"))+btoi(len(data) > 0 && data[len(data)-1] != '\n'))
		l.add(Problem{Line: line, Msg: "not valid YAML: " + msg})
		return nil, false
	}
	if next != nil {
		l.add(Problem{Line: next.Line, Msg: "only one YAML document is allowed"})
		return nil, false
	}
	if doc == nil || isNull(doc) {
		return &yaml.Node{Kind: yaml.MappingNode}, true
	}
	if doc.Kind != yaml.MappingNode {
		l.add(Problem{Line: doc.Line, Msg: fmt.Sprintf("the file must be a mapping of keys such as \"smtp:\", got %s", describe(doc))})
		return nil, false
	}
	return doc, true
}

// parseDocuments returns the content of the first document and of the
// second, if any; both nil for a file without documents.
func parseDocuments(data []byte) (first, second *yaml.Node, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 0; i < 2; i++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		var content *yaml.Node
		if len(n.Content) > 0 {
			content = n.Content[0]
		} else {
			content = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line}
		}
		if i == 0 {
			first = content
		} else {
			second = content
		}
	}
	return first, second, nil
}

var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// syntaxError splits the parser's "yaml: line N: msg" into N and msg.
func syntaxError(err error) (int, string) {
	s := err.Error()
	if m := lineRE.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, m[2]
	}
	return 0, strings.TrimPrefix(s, "yaml: ")
}

// maxLineSearch bounds findErrorLine, which parses every prefix of the file.
const maxLineSearch = 2000

// findErrorLine finds the line of a parser error: the first prefix of
// whole lines, from line from on, that fails with the same message ends at
// the culprit. 0 when not found or the file is too long to search.
func findErrorLine(data []byte, msg string, from int) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) > maxLineSearch {
		return 0
	}
	end := 0
	for i, ln := range lines {
		end += len(ln)
		if i+1 < from {
			continue
		}
		if _, _, err := parseDocuments(data[:end]); err != nil {
			if _, m := syntaxError(err); m == msg {
				return i + 1
			}
		}
	}
	return 0
}
