//go:build amd64 && !purego

#include "textflag.h"

// Byte shuffles that rotate each 64-bit word right by 24 and by 16 bits.
DATA ·rot24<>+0x00(SB)/8, $0x0201000706050403
DATA ·rot24<>+0x08(SB)/8, $0x0a09080f0e0d0c0b
DATA ·rot24<>+0x10(SB)/8, $0x0201000706050403
DATA ·rot24<>+0x18(SB)/8, $0x0a09080f0e0d0c0b
GLOBL ·rot24<>(SB), (NOPTR+RODATA), $32

DATA ·rot16<>+0x00(SB)/8, $0x0100070605040302
DATA ·rot16<>+0x08(SB)/8, $0x09080f0e0d0c0b0a
DATA ·rot16<>+0x10(SB)/8, $0x0100070605040302
DATA ·rot16<>+0x18(SB)/8, $0x09080f0e0d0c0b0a
GLOBL ·rot16<>(SB), (NOPTR+RODATA), $32

// a += b + 2*lo32(a)*lo32(b), four words at once; T is clobbered.
#define MULADD(a, b, T) \
	VPMULUDQ b, a, T \
	VPADDQ   b, a, a \
	VPADDQ   T, T, T \
	VPADDQ   T, a, a

// BlaMka's G on the four columns (A[i], B[i], C[i], D[i]). Y12 and Y13
// hold the rotation shuffles.
#define G(A, B, C, D, T) \
	MULADD(A, B, T)          \
	VPXOR    A, D, D         \
	VPSHUFD  $0xb1, D, D     \
	MULADD(C, D, T)          \
	VPXOR    C, B, B         \
	VPSHUFB  Y12, B, B       \
	MULADD(A, B, T)          \
	VPXOR    A, D, D         \
	VPSHUFB  Y13, D, D       \
	MULADD(C, D, T)          \
	VPXOR    C, B, B         \
	VPADDQ   B, B, T         \
	VPSRLQ   $63, B, B       \
	VPXOR    T, B, B

// P on v0..v15 held as A = v0..v3, B = v4..v7, C = v8..v11, D = v12..v15:
// G on the columns, then on the diagonals (B, C and D rotated by one, two
// and three words so that the diagonals line up as columns).
#define P(A, B, C, D, T) \
	G(A, B, C, D, T)         \
	VPERMQ   $0x39, B, B     \
	VPERMQ   $0x4e, C, C     \
	VPERMQ   $0x93, D, D     \
	G(A, B, C, D, T)         \
	VPERMQ   $0x93, B, B     \
	VPERMQ   $0x4e, C, C     \
	VPERMQ   $0x39, D, D

// func compressAVX2(scratch, out, x, y *block, xor bool)
//
// R = x ^ y; the rows of R are permuted into scratch, then its columns, and
// out becomes R ^ P(R), or out ^ R ^ P(R) with xor. out may be y (the
// address generation): each row of x and y is read before the same row of
// out is written.
TEXT ·compressAVX2(SB), NOSPLIT, $0-33
	MOVQ scratch+0(FP), DI
	MOVQ out+8(FP), DX
	MOVQ x+16(FP), SI
	MOVQ y+24(FP), BX
	MOVB xor+32(FP), CX
	VMOVDQU ·rot24<>(SB), Y12
	VMOVDQU ·rot16<>(SB), Y13
	XORQ AX, AX

rows:
	VMOVDQU 0(SI)(AX*1), Y0
	VMOVDQU 32(SI)(AX*1), Y1
	VMOVDQU 64(SI)(AX*1), Y2
	VMOVDQU 96(SI)(AX*1), Y3
	VPXOR   0(BX)(AX*1), Y0, Y0
	VPXOR   32(BX)(AX*1), Y1, Y1
	VPXOR   64(BX)(AX*1), Y2, Y2
	VPXOR   96(BX)(AX*1), Y3, Y3
	TESTB CL, CL
	JZ    store
	VPXOR 0(DX)(AX*1), Y0, Y4
	VPXOR 32(DX)(AX*1), Y1, Y5
	VPXOR 64(DX)(AX*1), Y2, Y6
	VPXOR 96(DX)(AX*1), Y3, Y7
	JMP   stored

store:
	VMOVDQA Y0, Y4
	VMOVDQA Y1, Y5
	VMOVDQA Y2, Y6
	VMOVDQA Y3, Y7

stored:
	VMOVDQU Y4, 0(DX)(AX*1)
	VMOVDQU Y5, 32(DX)(AX*1)
	VMOVDQU Y6, 64(DX)(AX*1)
	VMOVDQU Y7, 96(DX)(AX*1)
	P(Y0, Y1, Y2, Y3, Y8)
	VMOVDQU Y0, 0(DI)(AX*1)
	VMOVDQU Y1, 32(DI)(AX*1)
	VMOVDQU Y2, 64(DI)(AX*1)
	VMOVDQU Y3, 96(DI)(AX*1)
	ADDQ $128, AX
	CMPQ AX, $1024
	JB   rows

	// Column j is words 2j and 2j+1 of every row: 16 bytes at 16*j, with
	// a stride of 128 bytes.
	XORQ AX, AX

cols:
	VMOVDQU     0(DI)(AX*1), X0
	VINSERTI128 $1, 128(DI)(AX*1), Y0, Y0
	VMOVDQU     256(DI)(AX*1), X1
	VINSERTI128 $1, 384(DI)(AX*1), Y1, Y1
	VMOVDQU     512(DI)(AX*1), X2
	VINSERTI128 $1, 640(DI)(AX*1), Y2, Y2
	VMOVDQU     768(DI)(AX*1), X3
	VINSERTI128 $1, 896(DI)(AX*1), Y3, Y3
	P(Y0, Y1, Y2, Y3, Y8)
	VMOVDQU     0(DX)(AX*1), X4
	VINSERTI128 $1, 128(DX)(AX*1), Y4, Y4
	VMOVDQU     256(DX)(AX*1), X5
	VINSERTI128 $1, 384(DX)(AX*1), Y5, Y5
	VMOVDQU     512(DX)(AX*1), X6
	VINSERTI128 $1, 640(DX)(AX*1), Y6, Y6
	VMOVDQU     768(DX)(AX*1), X7
	VINSERTI128 $1, 896(DX)(AX*1), Y7, Y7
	VPXOR Y4, Y0, Y0
	VPXOR Y5, Y1, Y1
	VPXOR Y6, Y2, Y2
	VPXOR Y7, Y3, Y3
	VMOVDQU      X0, 0(DX)(AX*1)
	VEXTRACTI128 $1, Y0, 128(DX)(AX*1)
	VMOVDQU      X1, 256(DX)(AX*1)
	VEXTRACTI128 $1, Y1, 384(DX)(AX*1)
	VMOVDQU      X2, 512(DX)(AX*1)
	VEXTRACTI128 $1, Y2, 640(DX)(AX*1)
	VMOVDQU      X3, 768(DX)(AX*1)
	VEXTRACTI128 $1, Y3, 896(DX)(AX*1)
	ADDQ $16, AX
	CMPQ AX, $128
	JB   cols

	VZEROUPPER
	RET
