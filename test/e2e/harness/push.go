package harness

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// pushImage pushes img to a plain-HTTP registry as host/repo:tag with the
// OCI distribution API. (go-containerregistry's remote package would pull
// docker/cli into go.mod; this small client is enough for a loopback
// registry.)
func pushImage(host, repo, tag string, img v1.Image) error {
	base := "http://" + host + "/v2/" + repo
	put := func(d v1.Hash, open func() (io.ReadCloser, error)) error {
		if resp, err := http.Head(base + "/blobs/" + d.String()); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		resp, err := http.Post(base+"/blobs/uploads/", "", nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("starting blob upload: %s", resp.Status)
		}
		loc, err := resp.Location()
		if err != nil {
			return err
		}
		q := loc.Query()
		q.Set("digest", d.String())
		loc.RawQuery = q.Encode()
		rc, err := open()
		if err != nil {
			return err
		}
		defer rc.Close()
		body, err := io.ReadAll(rc)
		if err != nil {
			return err
		}
		return do(http.MethodPut, loc, "application/octet-stream", body, http.StatusCreated)
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		if err := put(d, l.Compressed); err != nil {
			return fmt.Errorf("layer %s: %w", d, err)
		}
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	if err := put(cfgName, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(cfg)), nil }); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	mf, err := img.RawManifest()
	if err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	u, err := url.Parse(base + "/manifests/" + tag)
	if err != nil {
		return err
	}
	return do(http.MethodPut, u, string(mt), mf, http.StatusCreated)
}

func do(method string, u *url.URL, contentType string, body []byte, want int) error {
	req, err := http.NewRequest(method, u.String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: %s: %s", method, u.Path, resp.Status, msg)
	}
	return nil
}
