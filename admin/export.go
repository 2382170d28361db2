package admin

import (
	"net/http"

	"optinproxy/internal/export"
)

// exportSubject answers ?format=json (default), csv or xlsx: everything
// stored about the subject (the rights of access and portability), built by
// internal/export as the portal's download is.
func (a *API) exportSubject(w http.ResponseWriter, r *http.Request, _ principal) {
	addr, ok := pathAddress(w, r)
	if !ok {
		return
	}
	format, err := export.ParseFormat(r.URL.Query().Get("format"))
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	ex, err := export.Collect(r.Context(), a.store, addr, a.opts.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := ex.Serve(w, format); err != nil {
		a.fail(w, r, err)
	}
}
