//go:build darwin || freebsd || netbsd || openbsd

package argon2id

// adviseHugePages: transparent huge pages are Linux's.
func adviseHugePages([]byte) {}
