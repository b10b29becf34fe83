package storage

import (
	"errors"
	"net/url"
	"os"
	"strings"
)

// secretEnv names the environment variables that hold credentials for the supported stores. Their values are
// scrubbed from every error this package returns, in case a driver ever quotes one.
var secretEnv = []string{
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	"AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_CONNECTION_STRING", "AZURE_CLIENT_SECRET",
	"GOOGLE_APPLICATION_CREDENTIALS_JSON",
	"HF_TOKEN",
}

// redactedErr is an error whose message had secrets removed; it still unwraps to the original for errors.Is.
type redactedErr struct {
	msg string
	err error
}

func (e *redactedErr) Error() string { return e.msg }
func (e *redactedErr) Unwrap() error { return e.err }

// scrub returns err with the values of the credential variables replaced by "[redacted]".
func scrub(err error) error {
	if err == nil {
		return nil
	}
	msg := RedactText(err.Error())
	if msg == err.Error() {
		return err
	}
	return &redactedErr{msg: msg, err: err}
}

// RedactText removes the values of the credential variables from s.
func RedactText(s string) string {
	for _, name := range secretEnv {
		// Values shorter than 4 bytes would blank out ordinary words; no real credential is that short.
		if v := os.Getenv(name); len(v) >= 4 {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	return s
}

// Redact returns uri without user info and with signature-like query values hidden, for messages.
func Redact(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "(unparsable URI)"
	}
	u.User = nil
	q := u.Query()
	for k := range q {
		lk := strings.ToLower(k)
		if strings.Contains(lk, "sig") || strings.Contains(lk, "secret") || strings.Contains(lk, "token") || strings.Contains(lk, "key") || strings.Contains(lk, "credential") {
			q.Set(k, "REDACTED")
		}
	}
	u.RawQuery = q.Encode()
	return RedactText(u.String())
}

// IsNotExist reports whether err says an object or file is missing.
func IsNotExist(err error) bool {
	return errors.Is(err, os.ErrNotExist) || isBlobNotFound(err)
}
