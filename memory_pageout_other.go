//go:build !linux

package main

// releaseStartupPages does nothing outside Linux (see the Linux version).
func releaseStartupPages() (int, error) { return 0, nil }
