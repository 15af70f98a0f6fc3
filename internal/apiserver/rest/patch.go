package rest

import (
	"encoding/json"
	"fmt"
	"net/http"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	sigsjson "sigs.k8s.io/json"

	"github.com/ballast-dev/ballast/internal/apiserver/kinds"
	"github.com/ballast-dev/ballast/internal/apiserver/request"
)

func (s *Server) servePatch(w http.ResponseWriter, r *http.Request, rq *request.Request) error {
	body, mt, fv, dry, err := request.WriteRequest(r, rq)
	if err != nil {
		return err
	}
	pt := types.PatchType(mt)
	switch pt {
	case types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType:
	case types.ApplyYAMLPatchType, types.ApplyCBORPatchType:
		return request.UnsupportedMedia("server-side apply is not supported by Ballast's API server: use `kubectl apply` without --server-side (client-side apply), or a JSON, merge or strategic merge patch")
	default:
		return request.UnsupportedMedia(fmt.Sprintf("the patch Content-Type %q is not supported: use application/json-patch+json, application/merge-patch+json or application/strategic-merge-patch+json", mt))
	}
	var warnings []string
	out, err := s.updateObject(r.Context(), rq, 0, dry, func(cur kinds.Object) (kinds.Object, error) {
		patched, err := applyPatch(rq.Kind, pt, cur, body)
		if err != nil {
			return nil, err
		}
		o := rq.Kind.NewObj()
		strictErrs, err := sigsjson.UnmarshalStrict(patched, o)
		if err != nil {
			return nil, invalidPatch(rq, fmt.Sprintf("the patched object is not a valid %s: %v", rq.Kind.Info.Kind, err))
		}
		warnings = warnings[:0]
		for _, e := range strictErrs {
			warnings = append(warnings, e.Error())
		}
		if fv == "Strict" && len(warnings) > 0 {
			return nil, request.BadRequest("strict decoding error: %s", request.JoinErr(warnings))
		}
		if err := request.CheckGVK(rq.Kind, o); err != nil {
			return nil, err
		}
		if o.GetName() != cur.GetName() || o.GetNamespace() != cur.GetNamespace() {
			return nil, invalidPatch(rq, "a patch may not change metadata.name or metadata.namespace")
		}
		return o, nil
	})
	if err != nil {
		return err
	}
	if fv == "Warn" {
		request.AddWarnings(w, warnings)
	}
	return request.WriteObject(w, r, rq, http.StatusOK, out, s.now())
}

func invalidPatch(rq *request.Request, msg string) *request.Error {
	return request.Invalid(rq.Kind.Info.Kind, rq.Name, "patch", msg)
}

// applyPatch applies a patch of type pt to the JSON of cur.
func applyPatch(k *kinds.Kind, pt types.PatchType, cur kinds.Object, patch []byte) ([]byte, error) {
	orig, err := json.Marshal(cur)
	if err != nil {
		return nil, request.InternalError(err)
	}
	switch pt {
	case types.JSONPatchType:
		p, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			return nil, request.BadRequest("the JSON patch cannot be decoded: %v", err)
		}
		out, err := p.Apply(orig)
		if err != nil {
			return nil, request.Invalid(k.Info.Kind, cur.GetName(), "patch", fmt.Sprintf("the JSON patch cannot be applied: %v", err))
		}
		return out, nil
	case types.MergePatchType:
		out, err := jsonpatch.MergePatch(orig, patch)
		if err != nil {
			return nil, request.BadRequest("the merge patch cannot be applied: %v", err)
		}
		return out, nil
	default:
		var pm map[string]any
		if err := json.Unmarshal(patch, &pm); err != nil {
			return nil, request.BadRequest("the strategic merge patch is not a JSON object: %v", err)
		}
		out, err := strategicpatch.StrategicMergePatch(orig, patch, k.NewObj())
		if err != nil {
			return nil, request.BadRequest("the strategic merge patch cannot be applied: %v", err)
		}
		return out, nil
	}
}
