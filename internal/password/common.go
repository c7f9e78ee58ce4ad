package password

import (
	_ "embed"
	"slices"
	"strings"
	"sync"
)

// commonList is 49,233 common passwords, lower-case, one a line (see
// hack/common-passwords.sh for where they come from, and
// common-passwords.LICENSE).
//
//go:embed common-passwords.txt
var commonList string

var common = sync.OnceValue(func() []string {
	list := strings.Split(strings.TrimSpace(commonList), "\n")
	slices.Sort(list)
	return slices.Compact(list)
})

// IsCommon reports whether pw, ignoring case, is on the list of common
// passwords, the first thing an attacker tries.
func IsCommon(pw string) bool {
	_, found := slices.BinarySearch(common(), strings.ToLower(pw))
	return found
}
