package gcsfs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"

	"cloud.google.com/go/storage"
	"gocloud.dev/blob"
	"gocloud.dev/blob/gcsblob"
	"gocloud.dev/gcp"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/option"

	"github.com/zonalread/zonalread/mrdpool"
)

// ErrNoCredentials is wrapped by Open's error for a gs:// bucket when no
// Application Default Credentials can be found (and the URL does not ask
// for anonymous access, nor is an emulator configured).
var ErrNoCredentials = errors.New("gcsfs: no Google Cloud credentials found (run 'gcloud auth application-default login' or set GOOGLE_APPLICATION_CREDENTIALS)")

// openGCS opens a gs:// bucket itself rather than through gocloud's URL
// opener, which prints a warning to stdout when it finds no credentials,
// caches that for the life of the process, and reads through
// http.DefaultTransport: 2 idle connections per host, so parallel ranged
// reads would dial (and handshake TLS) again and again.
//
// Query parameters: anonymous=true reads without credentials. The emulator
// variables STORAGE_EMULATOR_HOST (HTTP) and STORAGE_EMULATOR_HOST_GRPC are
// honoured. It returns the bucket and a function that releases the
// transport's idle connections (gcsblob never closes its client).
func openGCS(ctx context.Context, u *url.URL, o *Options) (*blob.Bucket, func(), error) {
	anonymous := false
	for k, v := range u.Query() {
		switch k {
		case "anonymous":
			b, err := strconv.ParseBool(v[0])
			if err != nil {
				return nil, nil, fmt.Errorf("gcsfs: bad bucket URL %q: anonymous=%q", u, v[0])
			}
			anonymous = b
		default:
			return nil, nil, fmt.Errorf("gcsfs: bad bucket URL %q: unknown parameter %q (want zonal, anonymous)", u, k)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	if o.StallTimeout > 0 {
		// A server that takes the request and never answers.
		tr.ResponseHeaderTimeout = o.StallTimeout
	}
	// Every response is checked against the generation its read pinned,
	// and a 200 that ignored Range is cut to the range (see
	// mrdpool.CheckingTransport): the storage client does neither.
	checked := &mrdpool.CheckingTransport{Base: tr}
	var hc *gcp.HTTPClient
	var bopts gcsblob.Options
	switch {
	case os.Getenv("STORAGE_EMULATOR_HOST") != "" || os.Getenv("STORAGE_EMULATOR_HOST_GRPC") != "":
		// gcsblob talks to STORAGE_EMULATOR_HOST without authentication
		// (through http.DefaultClient unless told otherwise); the gRPC
		// client dials STORAGE_EMULATOR_HOST_GRPC insecurely.
		hc = gcp.NewAnonymousHTTPClient(checked)
		bopts.ClientOptions = []option.ClientOption{option.WithHTTPClient(&hc.Client)}
	case anonymous:
		hc = gcp.NewAnonymousHTTPClient(checked)
		o.ClientOptions = append(o.ClientOptions, option.WithoutAuthentication())
	default:
		creds, err := google.FindDefaultCredentials(ctx, storage.ScopeReadOnly)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrNoCredentials, err)
		}
		if hc, err = gcp.NewHTTPClient(checked, creds.TokenSource); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrNoCredentials, err)
		}
	}
	b, err := gcsblob.OpenBucket(ctx, hc, u.Host, &bopts)
	if err != nil {
		return nil, nil, fmt.Errorf("gcsfs: open gs://%s: %w", u.Host, err)
	}
	var c *storage.Client
	if b.As(&c) {
		// Our own client: bound its retries of a dead server.
		c.SetRetry(o.retryOptions()...)
	}
	return b, tr.CloseIdleConnections, nil
}
