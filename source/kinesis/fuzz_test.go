package kinesis

import (
	"bytes"
	"io"
	"testing"
)

// FuzzPeekInitialResponse feeds arbitrary response bodies to the initial-response shim: it never
// panics, and what it hands the SDK always ends with every byte it was given, unchanged.
func FuzzPeekInitialResponse(f *testing.F) {
	ev := eventMsg("SubscribeToShardEvent", `{"Records":[]}`)
	var whole bytes.Buffer
	if err := encoderFor(&whole, ev); err != nil {
		f.Fatal(err)
	}
	f.Add(whole.Bytes())
	f.Add(whole.Bytes()[:7])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := peekInitialResponse(bytes.NewReader(body))
		if err != nil {
			t.Skip() // only an encoding failure of our own message, not reachable with valid input
		}
		got, _ := io.ReadAll(r)
		if !bytes.HasSuffix(got, body) {
			t.Fatalf("shim lost or changed bytes: in %x, out %x", body, got)
		}
	})
}
