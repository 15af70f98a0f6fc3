package openapi

import (
	"strings"

	kschema "k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ballast-dev/ballast/internal/apiserver/resource"
)

// param is one query or path parameter.
type param struct {
	name, in, typ, desc string
	required            bool
}

var (
	pName      = param{"name", "path", "string", "name of the object", true}
	pNamespace = param{"namespace", "path", "string", "object name and auth scope, such as for teams and projects", true}
	pPretty    = param{"pretty", "query", "string", "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget).", false}

	pDryRun          = param{"dryRun", "query", "string", "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed", false}
	pFieldManager    = param{"fieldManager", "query", "string", "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.", false}
	pFieldValidation = param{"fieldValidation", "query", "string", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict (the default).", false}
	pForce           = param{"force", "query", "boolean", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.", false}

	listParams = []param{
		{"allowWatchBookmarks", "query", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion.", false},
		{"continue", "query", "string", "The continue option should be set when retrieving more results from the server. Since this value is server defined, clients may only use the continue value from a previous query result with identical query parameters (except for the value of continue).", false},
		{"fieldSelector", "query", "string", "A selector to restrict the list of returned objects by their fields. Defaults to everything.", false},
		{"labelSelector", "query", "string", "A selector to restrict the list of returned objects by their labels. Defaults to everything.", false},
		{"limit", "query", "integer", "limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata to a value that can be used with the same initial query to retrieve the next set of results.", false},
		{"resourceVersion", "query", "string", "resourceVersion sets a constraint on what resource versions a request may be served from. Defaults to unset.", false},
		{"resourceVersionMatch", "query", "string", "resourceVersionMatch determines how resourceVersion is applied to list calls. Defaults to unset.", false},
		{"sendInitialEvents", "query", "boolean", "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will begin with synthetic events to produce the current state of objects in the collection.", false},
		{"timeoutSeconds", "query", "integer", "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity.", false},
		{"watch", "query", "boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion.", false},
	}
	deleteParams = []param{
		pDryRun,
		{"gracePeriodSeconds", "query", "integer", "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately.", false},
		{"orphanDependents", "query", "boolean", "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned.", false},
		{"propagationPolicy", "query", "string", "Whether and how garbage collection will be performed. Acceptable values are: 'Orphan', 'Background', 'Foreground'.", false},
	}
	logParams = []param{
		{"container", "query", "string", "The container for which to stream logs. Defaults to only container if there is one container in the pod.", false},
		{"follow", "query", "boolean", "Follow the log stream of the pod. Defaults to false.", false},
		{"limitBytes", "query", "integer", "If set, the number of bytes to read from the server before terminating the log output.", false},
		{"previous", "query", "boolean", "Return previous terminated container logs. Defaults to false.", false},
		{"sinceSeconds", "query", "integer", "A relative time in seconds before the current time from which to show logs.", false},
		{"tailLines", "query", "integer", "If set, the number of lines from the end of the logs to show.", false},
		{"timestamps", "query", "boolean", "If true, add an RFC3339 or RFC3339Nano timestamp at the beginning of every line of log output. Defaults to false.", false},
	}
)

// connectParams are the query parameters of the connect subresources.
var connectParams = map[string][]param{
	"exec": {
		{"command", "query", "string", "Command is the remote command to execute. argv array. Not executed within a shell.", false},
		{"container", "query", "string", "Container in which to execute the command. Defaults to only container if there is only one container in the pod.", false},
		{"stderr", "query", "boolean", "Redirect the standard error stream of the pod for this call.", false},
		{"stdin", "query", "boolean", "Redirect the standard input stream of the pod for this call. Defaults to false.", false},
		{"stdout", "query", "boolean", "Redirect the standard output stream of the pod for this call.", false},
		{"tty", "query", "boolean", "TTY if true indicates that a tty will be allocated for the exec call. Defaults to false.", false},
	},
	"attach": {
		{"container", "query", "string", "The container in which to execute the command. Defaults to only container if there is only one container in the pod.", false},
		{"stderr", "query", "boolean", "Stderr if true indicates that stderr is to be redirected for the attach call. Defaults to true.", false},
		{"stdin", "query", "boolean", "Stdin if true, redirects the standard input stream of the pod for this call. Defaults to false.", false},
		{"stdout", "query", "boolean", "Stdout if true indicates that stdout is to be redirected for the attach call. Defaults to true.", false},
		{"tty", "query", "boolean", "TTY if true indicates that a tty will be allocated for the attach call. This is passed through the container runtime so the tty is allocated on the worker node by the container runtime. Defaults to false.", false},
	},
	"portforward": {
		{"ports", "query", "integer", "List of ports to forward Required when using WebSockets", false},
	},
}

// op describes one operation independently of the OpenAPI version.
type op struct {
	method, action, id, desc string
	params                   []param
	body                     string // definition name of the request body
	patch                    bool
	resp                     string // definition name of the 200 response; "" for text
	created                  bool   // also 201
	accepted                 bool   // also 202
}

func (b *builder) param(p param) schema {
	s := schema{"name": p.name, "in": p.in, "description": p.desc}
	if p.required {
		s["required"] = true
	}
	if b.v3 {
		s["schema"] = schema{"type": p.typ, "uniqueItems": true}
	} else {
		s["type"] = p.typ
		s["uniqueItems"] = true
	}
	return s
}

var patchTypes = []string{
	"application/json-patch+json", "application/merge-patch+json",
	"application/strategic-merge-patch+json", "application/apply-patch+yaml",
}

func (b *builder) operation(o op, gvk kschema.GroupVersionKind, tag string) schema {
	s := schema{
		"description":                     o.desc,
		"operationId":                     o.id,
		"tags":                            []string{tag},
		"x-kubernetes-action":             o.action,
		"x-kubernetes-group-version-kind": gvkExt(gvk),
	}
	var params []schema
	for _, p := range o.params {
		params = append(params, b.param(p))
	}
	produces := []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}
	if o.resp == "" {
		produces = []string{"text/plain"}
	}
	respFor := func(desc string) schema {
		r := schema{"description": desc}
		var sch schema
		if o.resp == "" {
			sch = schema{"type": "string"}
		} else {
			sch = b.refTo(o.resp)
		}
		if b.v3 {
			content := schema{}
			for _, ct := range produces {
				content[ct] = schema{"schema": sch}
			}
			r["content"] = content
		} else {
			r["schema"] = sch
		}
		return r
	}
	responses := schema{"200": respFor("OK"), "401": schema{"description": "Unauthorized"}}
	if o.created {
		responses["201"] = respFor("Created")
	}
	if o.accepted {
		responses["202"] = respFor("Accepted")
	}
	s["responses"] = responses
	consumes := []string{"*/*"}
	if o.patch {
		consumes = patchTypes
	}
	if b.v3 {
		if o.body != "" {
			content := schema{}
			for _, ct := range consumes {
				content[ct] = schema{"schema": b.refTo(o.body)}
			}
			s["requestBody"] = schema{"content": content, "required": !strings.HasPrefix(o.action, "delete")}
		}
	} else {
		s["consumes"] = consumes
		s["produces"] = produces
		s["schemes"] = []string{"https"}
		if o.body != "" {
			params = append(params, schema{"name": "body", "in": "body", "required": !strings.HasPrefix(o.action, "delete"), "schema": b.refTo(o.body)})
		}
	}
	if len(params) > 0 {
		s["parameters"] = params
	}
	return s
}

func groupTitle(group string) (title, tag string) {
	if group == "" {
		return "Core", "core"
	}
	first, _, _ := strings.Cut(group, ".")
	return strings.ToUpper(first[:1]) + first[1:], strings.ReplaceAll(first, "-", "_")
}

// addResource adds the definitions and paths of one resource.
func addResource(b *builder, paths schema, in resource.Info) error {
	kindT, err := typeOf(in, in.Kind)
	if err != nil {
		return err
	}
	kind := b.define(kindT)
	addGVK(b, kind, in.GVK())

	list := ""
	if in.ListKind != "" && in.HasVerb("list") {
		listT, err := typeOf(in, in.ListKind)
		if err != nil {
			return err
		}
		list = b.define(listT)
		addGVK(b, list, in.GVK().GroupVersion().WithKind(in.ListKind))
	}
	status := b.define(statusType)
	addGVK(b, status, kschema.GroupVersionKind{Version: "v1", Kind: "Status"})
	deleteOpts := b.define(deleteOptionsType)
	addGVK(b, deleteOpts, in.GVK().GroupVersion().WithKind("DeleteOptions"))
	watchEvent := b.define(watchEventType)
	addGVK(b, watchEvent, in.GVK().GroupVersion().WithKind("WatchEvent"))
	patch := b.define(patchType)

	title, tagGroup := groupTitle(in.Group)
	gvTitle := title + strings.ToUpper(in.Version[:1]) + in.Version[1:]
	tag := tagGroup + "_" + in.Version
	base := "/api/" + in.Version
	if in.Group != "" {
		base = "/apis/" + in.Group + "/" + in.Version
	}
	scopeWord, collection := "", base+"/"+in.Resource
	var scopeParams []param
	if in.Namespaced {
		scopeWord = "Namespaced"
		collection = base + "/namespaces/{namespace}/" + in.Resource
		scopeParams = []param{pNamespace}
	}
	item := collection + "/{name}"
	gvk := in.GVK()
	id := func(verb, suffix string) string { return verb + gvTitle + scopeWord + in.Kind + suffix }

	addPath := func(path string, pathParams []param, ops ...op) {
		if len(ops) == 0 {
			return
		}
		p := schema{}
		for _, o := range ops {
			p[o.method] = b.operation(o, gvk, tag)
		}
		var ps []schema
		for _, pp := range append(append([]param(nil), pathParams...), pPretty) {
			ps = append(ps, b.param(pp))
		}
		p["parameters"] = ps
		paths[path] = p
	}

	var collOps, itemOps []op
	if in.HasVerb("list") {
		collOps = append(collOps, op{method: "get", action: "list", id: id("list", ""),
			desc: "list or watch objects of kind " + in.Kind, params: listParams, resp: list})
	}
	if in.HasVerb("create") {
		resp := kind
		collOps = append(collOps, op{method: "post", action: "post", id: id("create", ""),
			desc: "create " + article(in.Kind), params: []param{pDryRun, pFieldManager, pFieldValidation},
			body: kind, resp: resp, created: true, accepted: true})
	}
	if in.HasVerb("deletecollection") {
		collOps = append(collOps, op{method: "delete", action: "deletecollection", id: "deletecollection" + gvTitle + scopeWord + in.Kind,
			desc: "delete collection of " + in.Kind, params: append(append([]param(nil), deleteParams...), listParams...),
			body: deleteOpts, resp: status})
	}
	addPath(collection, scopeParams, collOps...)

	if in.HasVerb("get") {
		itemOps = append(itemOps, op{method: "get", action: "get", id: id("read", ""),
			desc: "read the specified " + in.Kind, resp: kind})
	}
	if in.HasVerb("update") {
		itemOps = append(itemOps, op{method: "put", action: "put", id: id("replace", ""),
			desc: "replace the specified " + in.Kind, params: []param{pDryRun, pFieldManager, pFieldValidation},
			body: kind, resp: kind, created: true})
	}
	if in.HasVerb("patch") {
		itemOps = append(itemOps, op{method: "patch", action: "patch", id: id("patch", ""),
			desc: "partially update the specified " + in.Kind, params: []param{pDryRun, pFieldManager, pFieldValidation, pForce},
			body: patch, patch: true, resp: kind, created: true})
	}
	if in.HasVerb("delete") {
		itemOps = append(itemOps, op{method: "delete", action: "delete", id: id("delete", ""),
			desc: "delete " + article(in.Kind), params: deleteParams, body: deleteOpts, resp: status, accepted: true})
	}
	itemParams := append([]param{pName}, scopeParams...)
	addPath(item, itemParams, itemOps...)

	if in.Namespaced && in.HasVerb("list") {
		p := schema{"get": b.operation(op{method: "get", action: "list", id: "list" + gvTitle + in.Kind + "ForAllNamespaces",
			desc: "list or watch objects of kind " + in.Kind, params: listParams, resp: list}, gvk, tag)}
		var ps []schema
		for _, pp := range []param{pPretty} {
			ps = append(ps, b.param(pp))
		}
		p["parameters"] = ps
		paths[base+"/"+in.Resource] = p
	}

	for _, sub := range in.Subresources {
		suffix := strings.ToUpper(sub[:1]) + sub[1:]
		var ops []op
		for _, v := range resource.SubresourceVerbs(sub) {
			switch {
			case connectParams[sub] != nil:
				// pods/exec, attach, portforward: connect GET (WebSocket) and POST (SPDY).
				method := map[string]string{"get": "get", "create": "post"}[v]
				verb := map[string]string{"get": "Get", "create": "Post"}[v]
				ops = append(ops, op{method: method, action: "connect", id: "connect" + gvTitle + verb + scopeWord + in.Kind + suffix,
					desc: "connect " + strings.ToUpper(method) + " requests to " + sub + " of " + in.Kind, params: connectParams[sub]})
			case sub == "log" && v == "get":
				ops = append(ops, op{method: "get", action: "get", id: id("read", suffix),
					desc: "read log of the specified " + in.Kind, params: logParams})
			case v == "get":
				ops = append(ops, op{method: "get", action: "get", id: id("read", suffix),
					desc: "read " + sub + " of the specified " + in.Kind, resp: kind})
			case v == "update":
				ops = append(ops, op{method: "put", action: "put", id: id("replace", suffix),
					desc: "replace " + sub + " of the specified " + in.Kind, params: []param{pDryRun, pFieldManager, pFieldValidation},
					body: kind, resp: kind, created: true})
			case v == "patch":
				ops = append(ops, op{method: "patch", action: "patch", id: id("patch", suffix),
					desc: "partially update " + sub + " of the specified " + in.Kind, params: []param{pDryRun, pFieldManager, pFieldValidation, pForce},
					body: patch, patch: true, resp: kind, created: true})
			}
		}
		addPath(item+"/"+sub, itemParams, ops...)
	}
	return nil
}

func article(kind string) string {
	if strings.ContainsRune("AEIOU", rune(kind[0])) {
		return "an " + kind
	}
	return "a " + kind
}
