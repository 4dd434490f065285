package openstacktest

import (
	"maps"
	"net/http"
	"slices"
)

// ImageInfo is a Glance image.
type ImageInfo struct {
	ID, Name string
}

// AddImage adds an active image with a new ID.
func (c *Cloud) AddImage(name string) ImageInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	im := &ImageInfo{ID: newID(), Name: name}
	c.images[im.ID] = im
	return *im
}

func (c *Cloud) routeImage(mux *http.ServeMux) {
	versions := func(w http.ResponseWriter, _ *http.Request) {
		var vs []any
		for _, v := range []string{"v2.16", "v2.9", "v2.0"} {
			status := "SUPPORTED"
			if v == "v2.16" {
				status = "CURRENT"
			}
			vs = append(vs, map[string]any{"id": v, "status": status,
				"links": []any{map[string]any{"rel": "self", "href": c.srv.URL + "/image/v2/"}}})
		}
		writeJSON(w, http.StatusMultipleChoices, map[string]any{"versions": vs})
	}
	mux.HandleFunc("GET /image", versions)
	mux.HandleFunc("GET /image/{$}", versions)
	mux.HandleFunc("GET /image/v2/images", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		var items []map[string]any
		for _, id := range slices.Sorted(maps.Keys(c.images)) {
			items = append(items, c.imageView(c.images[id]))
		}
		writeJSON(w, http.StatusOK, map[string]any{"images": filtered(r, items), "first": "/v2/images",
			"schema": "/v2/schemas/images"})
	})
	mux.HandleFunc("GET /image/v2/images/{id}", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		im, ok := c.images[r.PathValue("id")]
		if !ok {
			writeError(w, Image, http.StatusNotFound, "No image found with ID "+r.PathValue("id"))
			return
		}
		writeJSON(w, http.StatusOK, c.imageView(im))
	})
}

func (c *Cloud) imageView(im *ImageInfo) map[string]any {
	return map[string]any{"id": im.ID, "name": im.Name, "status": "active", "visibility": "public",
		"container_format": "bare", "disk_format": "qcow2", "min_disk": 0, "min_ram": 0, "size": 16338944,
		"owner": c.ProjectID, "protected": false, "os_hidden": false, "tags": []string{},
		"created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
		"self": "/v2/images/" + im.ID, "file": "/v2/images/" + im.ID + "/file", "schema": "/v2/schemas/image"}
}
