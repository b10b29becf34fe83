// Package s3test starts an S3-compatible server on loopback for tests, and sets the AWS_* environment a client
// needs to reach it.
package s3test

import (
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Credentials the server is given; the secret is long and unusual so a test can look for leaks of it.
const (
	AccessKey = "PREFTUNETESTACCESSKEY"
	SecretKey = "s3cr3t-Pr3ftune-T3st-Val:ue/9f8e7d6c5b4a"
	Region    = "us-east-1"
)

// Server is a running S3-compatible server.
type Server struct {
	// Endpoint is http://127.0.0.1:<port>.
	Endpoint string
}

// Start runs an in-process S3 server (gofakes3 with its memory backend) on 127.0.0.1, creates the buckets and
// sets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION for the test. It stops when the test ends.
func Start(t testing.TB, buckets ...string) *Server {
	t.Helper()
	backend := s3mem.New()
	faker := gofakes3.New(backend)
	ts := httptest.NewServer(faker.Server())
	t.Cleanup(ts.Close)
	for _, b := range buckets {
		if err := backend.CreateBucket(b); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("AWS_ACCESS_KEY_ID", AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", SecretKey)
	t.Setenv("AWS_REGION", Region)
	// Keep the SDK from reading the developer's own profile or instance metadata.
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return &Server{Endpoint: ts.URL}
}

// URI is s3://bucket/prefix with the options that reach this server.
func (s *Server) URI(bucket, prefix string) string {
	q := url.Values{"endpoint": {s.Endpoint}, "region": {Region}, "use_path_style": {"true"}}
	u := url.URL{Scheme: "s3", Host: bucket, Path: "/" + prefix, RawQuery: q.Encode()}
	if prefix == "" {
		u.Path = ""
	}
	return u.String()
}
