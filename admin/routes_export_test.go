package admin

// Routes lists the served routes for the OpenAPI test.
func Routes() []string {
	out := make([]string, len(routes))
	for i, r := range routes {
		out[i] = r.method + " " + r.path
	}
	return out
}

// RouteScopes maps each served route ("METHOD /path") to the scope it
// needs, for the OpenAPI test to check the document's security.
func RouteScopes() map[string]string {
	out := make(map[string]string, len(routes))
	for _, r := range routes {
		out[r.method+" "+r.path] = r.scope
	}
	return out
}
