package accounts

import (
	"net/mail"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ideapool/ideapool/internal/password"
)

const (
	maxEmailLen = 254
	maxNameLen  = 255
	minPassword = 8
)

var usernameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{3,64}$`)

// NormalizeEmail trims and lower-cases an email address.
func NormalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// checkEmail returns what is wrong with a normalized email, or "".
func checkEmail(email string) string {
	if email == "" {
		return "is required"
	}
	if len(email) > maxEmailLen {
		return "must be at most 254 characters"
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" {
		return "must be a valid email address like name@example.com"
	}
	at := strings.LastIndexByte(email, '@')
	if at < 1 || !strings.Contains(email[at+1:], ".") || strings.HasSuffix(email, ".") {
		return "must be a valid email address like name@example.com"
	}
	return ""
}

func checkName(name string) string {
	if strings.TrimSpace(name) == "" {
		return "is required"
	}
	if !utf8.ValidString(name) {
		return "must be valid UTF-8"
	}
	if utf8.RuneCountInString(name) > maxNameLen {
		return "must be at most 255 characters"
	}
	return ""
}

// checkPassword enforces the seed's rule: at least 8 characters with an
// upper-case letter, a lower-case letter and a digit; at most 1,024 bytes
// (refused, never truncated).
func checkPassword(pw string) string {
	const rule = "must be at least 8 characters with an upper-case letter, a lower-case letter and a digit"
	if pw == "" {
		return "is required"
	}
	if len(pw) > password.MaxLen {
		return "must be at most 1024 bytes"
	}
	if !utf8.ValidString(pw) || utf8.RuneCountInString(pw) < minPassword {
		return rule
	}
	var upper, lower, digit bool
	for _, r := range pw {
		switch {
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsLower(r):
			lower = true
		case unicode.IsDigit(r):
			digit = true
		}
	}
	if !upper || !lower || !digit {
		return rule
	}
	if password.IsCommon(pw) {
		return "is one of the most common passwords, which attackers try first; choose another"
	}
	return ""
}

func checkUsername(u string) string {
	if !usernameRE.MatchString(u) {
		return "must be 3 to 64 letters, digits, '.', '_' or '-'"
	}
	return ""
}
