// Package argon2id is Argon2id (RFC 9106, version 0x13) whose working memory
// can be kept and reused from one hash to the next.
//
// golang.org/x/crypto/argon2 allocates the memory of every hash afresh (19
// MiB at OWASP's parameters) and drops it: a login flood then allocates
// gigabytes a second, and the process pays for zeroing that memory, for the
// page faults of memory the runtime returned to the kernel, and for a heap
// that the garbage collector lets grow to twice what is live. Here a caller
// holds a Memory per hashing slot and passes it to every Key: what a server
// holds is then exactly its slots' memory, and a hash costs only its
// computation.
//
// Key gives the same output as x/crypto's argon2.IDKey for every input
// (argon2id_test.go checks RFC 9106's vector, x/crypto on a table of
// parameters, and a fuzz target against x/crypto). Like x/crypto, nothing
// branches on the password except what the algorithm itself does: the
// second half of the first pass and the later passes choose the blocks they
// read from the data (that is Argon2id's design, the same in every
// implementation).
package argon2id

import (
	"encoding/binary"
	"sync"

	"golang.org/x/crypto/blake2b"
)

// Version is the Argon2 version this package computes (0x13).
const Version = 0x13

const (
	blockWords = 128 // 1 KiB
	syncPoints = 4   // slices per pass
	typeID     = 2   // Argon2id
)

type block [blockWords]uint64

// Memory is the working memory of hashes, reused by each Key given it. It
// may be used by one Key at a time.
//
// On Linux and the BSDs it is mapped from the kernel outside Go's heap: the
// garbage collector neither scans it nor counts it, so memory that stays in
// use for the life of a server does not let the heap's other garbage grow
// by as much again (GOGC). It is unmapped when the Memory is collected.
type Memory struct {
	blocks []block
	// scratch is the compression function's temporary block, kept here so
	// the assembly version needs no stack of its own.
	scratch block
}

// NewMemory returns working memory for hashes of up to kib KiB. Its pages
// become resident as the first hash writes them.
func NewMemory(kib uint32) *Memory {
	m := &Memory{}
	m.blocks = allocBlocks(m, int(kib))
	return m
}

// Size is the memory held, in KiB.
func (m *Memory) Size() uint32 {
	if m == nil {
		return 0
	}
	return uint32(len(m.blocks)) //nolint:gosec // allocated from a uint32
}

// Key derives a keyLen-byte key from password and salt with Argon2id,
// time passes over memory KiB in threads lanes (the parameters of x/crypto's
// argon2.IDKey, whose output it equals). It works in mem when mem is large
// enough (mem may be nil), and otherwise in memory of its own that it drops
// afterwards. time and threads must be at least 1, keyLen at least 4.
func Key(mem *Memory, password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
	return deriveKey(mem, password, salt, nil, nil, time, memory, threads, keyLen)
}

// deriveKey is Key with RFC 9106's secret and associated data (for its test
// vector).
func deriveKey(mem *Memory, password, salt, secret, data []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
	if time < 1 {
		panic("argon2id: number of rounds too small")
	}
	if threads < 1 {
		panic("argon2id: parallelism degree too low")
	}
	h0 := initHash(password, salt, secret, data, time, memory, uint32(threads), keyLen)

	lanes := uint32(threads)
	memory = memory / (syncPoints * lanes) * (syncPoints * lanes)
	if memory < 2*syncPoints*lanes {
		memory = 2 * syncPoints * lanes
	}
	if mem == nil || uint32(len(mem.blocks)) < memory { //nolint:gosec // len fits: allocated from a uint32
		mem = &Memory{blocks: make([]block, memory)}
	}
	B := mem.blocks[:memory]
	initBlocks(&h0, B, lanes)
	fill(mem, B, time, memory, lanes)
	return extractKey(B, memory, lanes, keyLen)
}

func initHash(password, salt, secret, data []byte, time, memory, threads, keyLen uint32) [blake2b.Size + 8]byte {
	var (
		h0     [blake2b.Size + 8]byte
		params [24]byte
		tmp    [4]byte
	)
	b2, _ := blake2b.New512(nil)
	binary.LittleEndian.PutUint32(params[0:4], threads)
	binary.LittleEndian.PutUint32(params[4:8], keyLen)
	binary.LittleEndian.PutUint32(params[8:12], memory)
	binary.LittleEndian.PutUint32(params[12:16], time)
	binary.LittleEndian.PutUint32(params[16:20], Version)
	binary.LittleEndian.PutUint32(params[20:24], typeID)
	b2.Write(params[:])
	binary.LittleEndian.PutUint32(tmp[:], uint32(len(password))) //nolint:gosec // a password is far below 4 GiB
	b2.Write(tmp[:])
	b2.Write(password)
	binary.LittleEndian.PutUint32(tmp[:], uint32(len(salt))) //nolint:gosec // a salt is far below 4 GiB
	b2.Write(tmp[:])
	b2.Write(salt)
	binary.LittleEndian.PutUint32(tmp[:], uint32(len(secret))) //nolint:gosec // test data
	b2.Write(tmp[:])
	b2.Write(secret)
	binary.LittleEndian.PutUint32(tmp[:], uint32(len(data))) //nolint:gosec // test data
	b2.Write(tmp[:])
	b2.Write(data)
	b2.Sum(h0[:0])
	return h0
}

// initBlocks computes the first two blocks of every lane from H0.
func initBlocks(h0 *[blake2b.Size + 8]byte, B []block, lanes uint32) {
	var buf [1024]byte
	q := uint32(len(B)) / lanes //nolint:gosec // len fits: allocated from a uint32
	for lane := range lanes {
		for i := range uint32(2) {
			binary.LittleEndian.PutUint32(h0[blake2b.Size:], i)
			binary.LittleEndian.PutUint32(h0[blake2b.Size+4:], lane)
			hashPrime(buf[:], h0[:])
			b := &B[lane*q+i]
			for w := range b {
				b[w] = binary.LittleEndian.Uint64(buf[w*8:])
			}
		}
	}
}

// fill runs the passes over B, the lanes of a slice in parallel.
func fill(mem *Memory, B []block, time, memory, lanes uint32) {
	q := memory / lanes
	segLen := q / syncPoints
	for pass := range time {
		for slice := range uint32(syncPoints) {
			if lanes == 1 {
				// The common case (OWASP's p=1) without a goroutine:
				// the hash runs on the caller's scheduler slot.
				fillSegment(&mem.scratch, B, pass, slice, 0, time, memory, lanes, q, segLen)
				continue
			}
			var wg sync.WaitGroup
			for lane := range lanes {
				wg.Go(func() {
					var scratch block
					fillSegment(&scratch, B, pass, slice, lane, time, memory, lanes, q, segLen)
				})
			}
			wg.Wait()
		}
	}
}

// fillSegment computes one lane's blocks of one slice of one pass.
func fillSegment(scratch *block, B []block, pass, slice, lane, time, memory, lanes, q, segLen uint32) {
	var addresses, input, zero block
	// Argon2id: the first half of the first pass chooses its references
	// from a counter (Argon2i), the rest from the previous block (Argon2d).
	independent := pass == 0 && slice < syncPoints/2
	if independent {
		input[0] = uint64(pass)
		input[1] = uint64(lane)
		input[2] = uint64(slice)
		input[3] = uint64(memory)
		input[4] = uint64(time)
		input[5] = typeID
	}
	index := uint32(0)
	if pass == 0 && slice == 0 {
		index = 2 // the first two blocks come from H0
		if independent {
			nextAddresses(scratch, &addresses, &input, &zero)
		}
	}
	offset := lane*q + slice*segLen + index
	for ; index < segLen; index, offset = index+1, offset+1 {
		prev := offset - 1
		if index == 0 && slice == 0 {
			prev += q // the lane's last block, from the previous pass
		}
		var rand uint64
		if independent {
			if index%blockWords == 0 {
				nextAddresses(scratch, &addresses, &input, &zero)
			}
			rand = addresses[index%blockWords]
		} else {
			rand = B[prev][0]
		}
		refLane := uint32(rand>>32) % lanes
		if pass == 0 && slice == 0 {
			refLane = lane
		}
		ref := refLane*q + refIndex(rand, pass, slice, index, q, segLen, refLane == lane)
		compress(scratch, &B[offset], &B[prev], &B[ref], pass > 0)
	}
}

// nextAddresses computes the next block of Argon2i reference addresses.
func nextAddresses(scratch, addresses, input, zero *block) {
	input[6]++
	compress(scratch, addresses, zero, input, false)
	compress(scratch, addresses, zero, addresses, false)
}

// refIndex maps the pseudo-random rand to a block of the reference area
// (RFC 9106, section 3.4.1.2), as an index within the lane.
func refIndex(rand uint64, pass, slice, index, q, segLen uint32, sameLane bool) uint32 {
	var area, start uint32
	if pass == 0 {
		area = slice * segLen
	} else {
		area = q - segLen
		start = (slice + 1) * segLen % q
	}
	switch {
	case sameLane:
		area += index - 1
	case index == 0:
		area--
	}
	x := rand & 0xffffffff
	x = x * x >> 32
	y := uint64(area) * x >> 32
	return uint32((uint64(start) + uint64(area) - 1 - y) % uint64(q)) //nolint:gosec // < q
}

// extractKey XORs the lanes' last blocks and hashes them to the tag.
func extractKey(B []block, memory, lanes, keyLen uint32) []byte {
	q := memory / lanes
	final := B[q-1]
	for lane := uint32(1); lane < lanes; lane++ {
		last := &B[lane*q+q-1]
		for i := range final {
			final[i] ^= last[i]
		}
	}
	var buf [1024]byte
	for i, w := range final {
		binary.LittleEndian.PutUint64(buf[i*8:], w)
	}
	key := make([]byte, keyLen)
	hashPrime(key, buf[:])
	return key
}

// hashPrime is H' (RFC 9106, section 3.3): BLAKE2b stretched to len(out)
// bytes.
func hashPrime(out, in []byte) {
	var size [4]byte
	binary.LittleEndian.PutUint32(size[:], uint32(len(out))) //nolint:gosec // a tag or a block
	if len(out) <= blake2b.Size {
		b2, _ := blake2b.New(len(out), nil)
		b2.Write(size[:])
		b2.Write(in)
		b2.Sum(out[:0])
		return
	}
	b2, _ := blake2b.New512(nil)
	b2.Write(size[:])
	b2.Write(in)
	var v [blake2b.Size]byte
	b2.Sum(v[:0])
	copy(out, v[:32])
	pos := 32
	for len(out)-pos > blake2b.Size {
		v = blake2b.Sum512(v[:])
		copy(out[pos:], v[:32])
		pos += 32
	}
	b2, _ = blake2b.New(len(out)-pos, nil)
	b2.Write(v[:])
	b2.Sum(out[pos:pos])
}
