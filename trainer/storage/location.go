package storage

import (
	"context"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"strings"

	"gocloud.dev/blob"
	// Drivers for the schemes a Location accepts.
	_ "gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/s3blob"
)

// Schemes a Location accepts. https:// is accepted by Fetch only (a dataset served over HTTP).
var Schemes = []string{"s3", "gs", "azblob", "file"}

// Location is a prefix in a bucket (or a local directory for file://).
type Location struct {
	uri    *url.URL // the parsed URI, path cleaned, no user info
	bucket *blob.Bucket
	prefix string // key prefix without a trailing slash; "" is the bucket's root
	local  string // the local path for file://
}

// Parse checks a storage URI without opening anything: a supported scheme, a bucket (or a path for file://), no
// credentials in it. Plain paths (no scheme) are file paths.
func Parse(uri string) (*url.URL, error) {
	if uri == "" {
		return nil, fmt.Errorf("is empty")
	}
	if !strings.Contains(uri, "://") {
		abs, err := filepath.Abs(uri)
		if err != nil {
			return nil, err
		}
		return &url.URL{Scheme: "file", Path: abs}, nil
	}
	u, err := url.Parse(uri)
	if err != nil {
		// url's error quotes the whole URI; say only what is wrong.
		return nil, fmt.Errorf("is not a valid URI: %v", stripURL(err))
	}
	if u.User != nil {
		return nil, fmt.Errorf("%s://%s: credentials in the URI are not accepted; they come from the run's secretRef (environment)", u.Scheme, u.Host)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("%q names host %q; file URIs must be local (file:///path)", uri, u.Host)
		}
		if u.Path == "" {
			return nil, fmt.Errorf("%q has no path", uri)
		}
		return &url.URL{Scheme: "file", Path: filepath.Clean(u.Path)}, nil
	case "s3", "gs", "azblob":
		if u.Host == "" {
			return nil, fmt.Errorf("%s:// URI %q names no bucket", u.Scheme, Redact(uri))
		}
		c := *u
		c.Path = strings.Trim(path.Clean("/"+u.Path), "/")
		if c.Path != "" {
			c.Path = "/" + c.Path
		}
		c.RawPath = ""
		return &c, nil
	default:
		return nil, fmt.Errorf("scheme %q is not supported (want one of %s)", u.Scheme, strings.Join(Schemes, ", "))
	}
}

// stripURL keeps the reason of a *url.Error, not the URI it quotes.
func stripURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// IsLocal reports whether uri is a local path or file:// URI (the trainer then reads and writes in place).
func IsLocal(uri string) bool {
	u, err := Parse(uri)
	return err == nil && u.Scheme == "file"
}

// Open opens the bucket of uri. Close the Location when done.
func Open(ctx context.Context, uri string) (*Location, error) {
	u, err := Parse(uri)
	if err != nil {
		return nil, err
	}
	l := &Location{uri: u, prefix: strings.TrimPrefix(u.Path, "/")}
	if u.Scheme == "file" {
		// fileblob rooted at the path itself; metadata=skip keeps its .attrs sidecar files out of model and
		// checkpoint directories, no_tmp_dir keeps its temporary files on the same filesystem.
		l.local, l.prefix = u.Path, ""
		q := "create_dir=true&no_tmp_dir=true&metadata=skip"
		if l.bucket, err = blob.OpenBucket(ctx, (&url.URL{Scheme: "file", Path: u.Path, RawQuery: q}).String()); err != nil {
			return nil, scrub(fmt.Errorf("opening %s: %w", l, err))
		}
		return l, nil
	}
	b := url.URL{Scheme: u.Scheme, Host: u.Host, RawQuery: u.RawQuery}
	if l.bucket, err = blob.OpenBucket(ctx, b.String()); err != nil {
		return nil, scrub(fmt.Errorf("opening %s: %w", l, err))
	}
	return l, nil
}

// Close releases the bucket.
func (l *Location) Close() error { return l.bucket.Close() }

// Local is the local path of a file:// Location, "" for a remote one.
func (l *Location) Local() string { return l.local }

// String is the Location's URI, options included (they hold no secrets: credentials never travel in a URI).
func (l *Location) String() string { return l.uri.String() }

// URI is the URI of rel ("a/b", slash-separated) under the Location, with the same options.
func (l *Location) URI(rel string) string {
	u := *l.uri
	if rel != "" {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/" + strings.Trim(rel, "/")
	}
	return u.String()
}

// key is the object key of rel under the prefix.
func (l *Location) key(rel string) string {
	rel = strings.Trim(rel, "/")
	switch {
	case l.prefix == "":
		return rel
	case rel == "":
		return l.prefix
	}
	return l.prefix + "/" + rel
}
