package argon2id

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"testing"

	"golang.org/x/crypto/argon2"
)

// RFC 9106, section 5.3: Argon2id with a secret and associated data.
func TestRFC9106Vector(t *testing.T) {
	want, _ := hex.DecodeString("0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659")
	got := deriveKey(nil, bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 16),
		bytes.Repeat([]byte{3}, 8), bytes.Repeat([]byte{4}, 12), 3, 32, 4, 32)
	if !bytes.Equal(got, want) {
		t.Fatalf("tag %x, want %x", got, want)
	}
}

// Key equals x/crypto's argon2.IDKey across the parameters that change the
// algorithm's path: one and several lanes, memory below the minimum and not
// a multiple of the slices, more than 128 blocks per segment (a second
// address block), one and several passes, short and long tags; and with
// reused memory that held another hash before (nothing depends on the
// memory's earlier contents).
func TestKeyEqualsXCrypto(t *testing.T) {
	tests := map[string]struct {
		time, memory uint32
		threads      uint8
		keyLen       uint32
	}{
		"owasp":                  {2, 19 * 1024, 1, 32},
		"one pass":               {1, 64, 1, 32},
		"below the minimum":      {1, 3, 1, 16},
		"not a multiple of 4p":   {3, 37, 2, 32},
		"two address blocks":     {2, 1024 + 36, 1, 32},
		"four lanes":             {3, 4096, 4, 64},
		"many passes":            {7, 256, 3, 32},
		"short tag":              {2, 64, 1, 4},
		"tag longer than 64":     {1, 64, 1, 65},
		"tag of two hash blocks": {1, 64, 1, 97},
		"long tag":               {1, 64, 1, 1024},
	}
	mem := NewMemory(19 * 1024)
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for _, in := range []struct{ pw, salt []byte }{
				{[]byte("the-Secret-123"), []byte("somesaltsomesalt")},
				{nil, []byte("12345678")},
				{bytes.Repeat([]byte{0xff}, 1024), bytes.Repeat([]byte{0}, 64)},
			} {
				want := argon2.IDKey(in.pw, in.salt, tc.time, tc.memory, tc.threads, tc.keyLen)
				for _, m := range []*Memory{nil, mem, NewMemory(1)} {
					if got := Key(m, in.pw, in.salt, tc.time, tc.memory, tc.threads, tc.keyLen); !bytes.Equal(got, want) {
						t.Fatalf("Key(memory of %d KiB, %q...) = %x, want %x", m.Size(), in.pw[:min(len(in.pw), 8)], got, want)
					}
				}
			}
		})
	}
}

// The assembly and the Go compression functions agree on random blocks, in
// both modes and when out is also an input (as the address generation
// calls it).
func TestCompressMatchesGeneric(t *testing.T) {
	var x, y, out1, out2, s1, s2 block
	seed := uint64(0x9e3779b97f4a7c15)
	next := func() uint64 { seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17; return seed }
	for round := range 200 {
		for i := range x {
			x[i], y[i], out1[i] = next(), next(), next()
		}
		out2 = out1
		xor := round%2 == 1
		compress(&s1, &out1, &x, &y, xor)
		compressGeneric(&s2, &out2, &x, &y, xor)
		if out1 != out2 {
			t.Fatalf("round %d (xor %v): compress and compressGeneric differ", round, xor)
		}
		a, b := y, y
		compress(&s1, &a, &x, &a, false)
		compressGeneric(&s2, &b, &x, &b, false)
		if a != b {
			t.Fatalf("round %d: aliased out and y differ", round)
		}
	}
}

// FuzzKey compares Key with x/crypto on arbitrary passwords, salts and
// small parameters.
func FuzzKey(f *testing.F) {
	f.Add([]byte("password"), []byte("saltsalt"), uint8(1), uint16(8), uint8(1), uint8(32))
	f.Add([]byte{}, []byte{0}, uint8(3), uint16(300), uint8(3), uint8(70))
	mem := NewMemory(512)
	f.Fuzz(func(t *testing.T, pw, salt []byte, time uint8, memory uint16, threads, keyLen uint8) {
		tm := uint32(time%4) + 1
		m := uint32(memory % 600)
		p := threads%4 + 1
		k := uint32(keyLen) + 4
		want := argon2.IDKey(pw, salt, tm, m, p, k)
		if got := Key(mem, pw, salt, tm, m, p, k); !bytes.Equal(got, want) {
			t.Fatalf("Key(t=%d m=%d p=%d len=%d) = %x, want %x", tm, m, p, k, got, want)
		}
	})
}

func ExampleKey() {
	mem := NewMemory(19 * 1024) // one per hashing slot, reused by every hash
	key := Key(mem, []byte("the-Secret-123"), []byte("somesaltsomesalt"), 2, 19*1024, 1, 32)
	fmt.Println(hex.EncodeToString(key) == hex.EncodeToString(argon2.IDKey([]byte("the-Secret-123"), []byte("somesaltsomesalt"), 2, 19*1024, 1, 32)))
	// Output: true
}
