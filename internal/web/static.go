package web

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"strings"
)

// assetVersions maps each embedded asset (path under static/) to a short
// hash of its content, so that its URL changes when it does.
var assetVersions = func() map[string]string {
	out := map[string]string{}
	_ = fs.WalkDir(staticFS, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[strings.TrimPrefix(path, "static/")] = hex.EncodeToString(sum[:6])
		return nil
	})
	return out
}()

// asset is the URL of an embedded asset. An unknown name is a bug in a
// template: it panics, and every page test catches it.
func asset(name string) string {
	v, ok := assetVersions[name]
	if !ok {
		panic("web: no embedded asset " + name)
	}
	return "/static/" + name + "?v=" + v
}
