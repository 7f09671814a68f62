//go:build seeds

package partition

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFuzzSeeds writes FuzzProducerSnapshot's seed corpus
// (go test -tags seeds -run TestWriteFuzzSeeds).
func TestWriteFuzzSeeds(t *testing.T) {
	d := filepath.Join("testdata", "fuzz", "FuzzProducerSnapshot")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, b := range [][]byte{encodeSnapshot(42, sampleProducers()), encodeSnapshot(0, newProducers())} {
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("snapshot-%d", i)), []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
