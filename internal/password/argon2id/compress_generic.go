package argon2id

import "math/bits"

// compressGeneric is the compression function G (RFC 9106, section 3.5):
// out = P(x ^ y) ^ x ^ y, XORed into out instead when xor is set (every
// pass after the first). scratch is its working block.
func compressGeneric(scratch, out, x, y *block, xor bool) {
	t := scratch
	for i := range t {
		t[i] = x[i] ^ y[i]
	}
	// P over the eight rows (16 consecutive words each)...
	for i := 0; i < blockWords; i += 16 {
		permute(&t[i], &t[i+1], &t[i+2], &t[i+3], &t[i+4], &t[i+5], &t[i+6], &t[i+7],
			&t[i+8], &t[i+9], &t[i+10], &t[i+11], &t[i+12], &t[i+13], &t[i+14], &t[i+15])
	}
	// ...then over the eight columns (two words of each row).
	for i := 0; i < 16; i += 2 {
		permute(&t[i], &t[i+1], &t[i+16], &t[i+17], &t[i+32], &t[i+33], &t[i+48], &t[i+49],
			&t[i+64], &t[i+65], &t[i+80], &t[i+81], &t[i+96], &t[i+97], &t[i+112], &t[i+113])
	}
	if xor {
		for i := range out {
			out[i] ^= t[i] ^ x[i] ^ y[i]
		}
		return
	}
	for i := range out {
		out[i] = t[i] ^ x[i] ^ y[i]
	}
}

// permute is P: one BLAKE2b round without message words, with BlaMka's
// multiplications (RFC 9106, section 3.6).
func permute(p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15 *uint64) {
	v0, v1, v2, v3, v4, v5, v6, v7 := *p0, *p1, *p2, *p3, *p4, *p5, *p6, *p7
	v8, v9, v10, v11, v12, v13, v14, v15 := *p8, *p9, *p10, *p11, *p12, *p13, *p14, *p15
	v0, v4, v8, v12 = gb(v0, v4, v8, v12)
	v1, v5, v9, v13 = gb(v1, v5, v9, v13)
	v2, v6, v10, v14 = gb(v2, v6, v10, v14)
	v3, v7, v11, v15 = gb(v3, v7, v11, v15)
	v0, v5, v10, v15 = gb(v0, v5, v10, v15)
	v1, v6, v11, v12 = gb(v1, v6, v11, v12)
	v2, v7, v8, v13 = gb(v2, v7, v8, v13)
	v3, v4, v9, v14 = gb(v3, v4, v9, v14)
	*p0, *p1, *p2, *p3, *p4, *p5, *p6, *p7 = v0, v1, v2, v3, v4, v5, v6, v7
	*p8, *p9, *p10, *p11, *p12, *p13, *p14, *p15 = v8, v9, v10, v11, v12, v13, v14, v15
}

func gb(a, b, c, d uint64) (uint64, uint64, uint64, uint64) {
	a += b + 2*lo(a)*lo(b)
	d = bits.RotateLeft64(d^a, -32)
	c += d + 2*lo(c)*lo(d)
	b = bits.RotateLeft64(b^c, -24)
	a += b + 2*lo(a)*lo(b)
	d = bits.RotateLeft64(d^a, -16)
	c += d + 2*lo(c)*lo(d)
	b = bits.RotateLeft64(b^c, -63)
	return a, b, c, d
}

// lo is the low 32 bits of x, which BlaMka multiplies.
func lo(x uint64) uint64 { return x & 0xffffffff }
