package kafka

import (
	"errors"
	"fmt"
	"strings"
)

// topicTemplate is a parsed sink.kafka.topic: literal parts and the placeholders {stream} and
// {shard_id}.
type topicTemplate struct {
	parts []topicPart
	fixed bool
	name  string // the topic when fixed
}

type topicPart struct {
	lit   string
	field string // "", "stream" or "shard_id"
}

const maxTopicLen = 249

// parseTopicTemplate checks a topic name or template. Literal text must be a legal Kafka topic
// name fragment ([a-zA-Z0-9._-]); only {stream} and {shard_id} may appear in braces.
func parseTopicTemplate(s string) (*topicTemplate, error) {
	t := &topicTemplate{fixed: true, name: s}
	rest := s
	for rest != "" {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			t.parts = append(t.parts, topicPart{lit: rest})
			break
		}
		if rest[i] == '}' {
			return nil, errors.New("unmatched '}'")
		}
		if i > 0 {
			t.parts = append(t.parts, topicPart{lit: rest[:i]})
		}
		end := strings.IndexByte(rest[i:], '}')
		if end < 0 {
			return nil, errors.New("unclosed '{'")
		}
		name := rest[i+1 : i+end]
		switch name {
		case "stream", "shard_id":
			t.parts = append(t.parts, topicPart{field: name})
			t.fixed = false
		default:
			return nil, fmt.Errorf("unknown placeholder {%s}", name)
		}
		rest = rest[i+end+1:]
	}
	for _, p := range t.parts {
		if p.field != "" {
			continue
		}
		for _, r := range p.lit {
			if !topicChar(r) {
				return nil, fmt.Errorf("character %q is not allowed in a Kafka topic name", r)
			}
		}
	}
	if t.fixed {
		if s == "." || s == ".." {
			return nil, errors.New(`"." and ".." are not topic names`)
		}
		if len(s) > maxTopicLen {
			return nil, fmt.Errorf("longer than %d characters", maxTopicLen)
		}
	}
	return t, nil
}

func topicChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

// topic renders the template for a record's stream and shard. It fails when the result is not a
// legal topic name (a stream or shard name with other characters, or too long), so such a record
// fails instead of being produced somewhere unexpected.
func (t *topicTemplate) topic(stream, shard string) (string, error) {
	if t.fixed {
		return t.name, nil
	}
	var b strings.Builder
	for _, p := range t.parts {
		switch p.field {
		case "":
			b.WriteString(p.lit)
		case "stream":
			b.WriteString(stream)
		case "shard_id":
			b.WriteString(shard)
		}
	}
	s := b.String()
	if s == "" || s == "." || s == ".." || len(s) > maxTopicLen {
		return "", fmt.Errorf("topic template gives %q for stream %q shard %q: not a legal topic name", s, stream, shard)
	}
	for _, r := range s {
		if !topicChar(r) {
			return "", fmt.Errorf("topic template gives %q for stream %q shard %q: character %q is not allowed in a topic name", s, stream, shard, r)
		}
	}
	return s, nil
}
