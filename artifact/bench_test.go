package artifact

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkPack packs a 64 MiB tree of 64 files, either incompressible
// (random) or text made of words from a 512-word vocabulary.
func BenchmarkPack(b *testing.B) {
	const files, fileSize = 64, 1 << 20
	for _, kind := range []string{"random", "text"} {
		b.Run(kind, func(b *testing.B) {
			root := b.TempDir()
			rng := rand.New(rand.NewPCG(1, 2))
			words := make([][]byte, 512)
			for i := range words {
				for range 2 + rng.IntN(9) {
					words[i] = append(words[i], byte('a'+rng.IntN(26)))
				}
				sep := byte(' ')
				if rng.IntN(8) == 0 {
					sep = '\n'
				}
				words[i] = append(words[i], sep)
			}
			buf := make([]byte, 0, fileSize+16)
			for i := range files {
				buf = buf[:0]
				for len(buf) < fileSize {
					if kind == "random" {
						buf = binary.LittleEndian.AppendUint64(buf, rng.Uint64())
					} else {
						buf = append(buf, words[rng.IntN(len(words))]...)
					}
				}
				p := filepath.Join(root, "dist", fmt.Sprintf("d%d", i%4), fmt.Sprintf("f%02d", i))
				must(b, os.MkdirAll(filepath.Dir(p), 0o755))
				must(b, os.WriteFile(p, buf[:fileSize], 0o644))
			}
			s := newStore(b)
			b.SetBytes(files * fileSize)
			var size int64
			for b.Loop() {
				d, err := s.Pack(context.Background(), root, "dist")
				if err != nil {
					b.Fatal(err)
				}
				size = d.Size
			}
			b.ReportMetric(float64(size)/(files*fileSize), "compressed/input")
		})
	}
}
