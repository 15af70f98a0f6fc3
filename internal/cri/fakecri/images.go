package fakecri

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// imageService serves CRI's ImageService from the set of present images.
type imageService struct {
	runtimeapi.UnimplementedImageServiceServer
	r *Runtime
}

func (s *imageService) ListImages(_ context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	var only string
	if ref := req.GetFilter().GetImage().GetImage(); ref != "" {
		id, ok := r.lookupImageLocked(ref)
		if !ok {
			return &runtimeapi.ListImagesResponse{}, nil
		}
		only = id
	}
	out := &runtimeapi.ListImagesResponse{}
	for _, id := range r.imageIDsLocked() {
		if only == "" || id == only {
			out.Images = append(out.Images, r.imageLocked(id))
		}
	}
	return out, nil
}

func (s *imageService) ImageStatus(_ context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := r.lookupImageLocked(req.GetImage().GetImage())
	if !ok {
		return &runtimeapi.ImageStatusResponse{}, nil // absent: Image is nil
	}
	return &runtimeapi.ImageStatusResponse{Image: r.imageLocked(id)}, nil
}

func (s *imageService) PullImage(_ context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, status.Error(codes.InvalidArgument, "image to pull must not be empty")
	}
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	n := normalizeRef(ref)
	msg, ok := r.pullable[n]
	switch {
	case !ok:
		return nil, status.Errorf(codes.NotFound, "failed to pull and unpack image %q: failed to resolve reference %q: %s: not found", n, n, n)
	case msg != "":
		return nil, status.Errorf(codes.Unknown, "failed to pull and unpack image %q: %s", n, msg)
	}
	r.images[n] = imageID(n)
	return &runtimeapi.PullImageResponse{ImageRef: r.images[n]}, nil
}

func (s *imageService) RemoveImage(_ context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := r.lookupImageLocked(req.GetImage().GetImage())
	if !ok {
		return &runtimeapi.RemoveImageResponse{}, nil // already removed
	}
	for ref, other := range r.images {
		if other == id { // every tag of the image goes
			delete(r.images, ref)
		}
	}
	return &runtimeapi.RemoveImageResponse{}, nil
}

// lookupImageLocked finds a present image by reference or ID and returns its ID.
func (r *Runtime) lookupImageLocked(ref string) (string, bool) {
	if ref == "" {
		return "", false
	}
	if strings.HasPrefix(ref, "sha256:") {
		for _, id := range r.images {
			if id == ref {
				return id, true
			}
		}
		return "", false
	}
	id, ok := r.images[normalizeRef(ref)]
	return id, ok
}

func (r *Runtime) imageIDsLocked() []string {
	seen := map[string]bool{}
	var ids []string
	for _, id := range r.images {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

func (r *Runtime) imageLocked(id string) *runtimeapi.Image {
	img := &runtimeapi.Image{Id: id, Size: 1 << 20, Spec: &runtimeapi.ImageSpec{}}
	for ref, other := range r.images {
		if other != id {
			continue
		}
		if strings.Contains(ref, "@") {
			img.RepoDigests = append(img.RepoDigests, ref)
		} else {
			img.RepoTags = append(img.RepoTags, ref)
		}
	}
	sort.Strings(img.RepoTags)
	sort.Strings(img.RepoDigests)
	if len(img.RepoTags) > 0 {
		img.Spec.Image = img.RepoTags[0]
	}
	return img
}

// normalizeRef spells an image reference in full, as containerd stores it:
// "busybox" is "docker.io/library/busybox:latest".
func normalizeRef(ref string) string {
	if strings.HasPrefix(ref, "sha256:") {
		return ref
	}
	name, digest := ref, ""
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		name, digest = ref[:i], ref[i:]
	}
	if i := strings.IndexByte(name, '/'); i < 0 {
		name = "docker.io/library/" + name
	} else if first := name[:i]; !strings.ContainsAny(first, ".:") && first != "localhost" {
		name = "docker.io/" + name
	}
	if digest == "" && !strings.Contains(name[strings.LastIndexByte(name, '/')+1:], ":") {
		name += ":latest"
	}
	return name + digest
}

// imageID is a stable made-up digest of a normalized reference.
func imageID(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return "sha256:" + hex.EncodeToString(sum[:])
}
