package registry

import (
	"encoding/json"
	"errors"
	"net/http"
	"syscall"
)

// Error codes defined by the OCI distribution specification v1.1.
const (
	CodeBlobUnknown         = "BLOB_UNKNOWN"
	CodeBlobUploadInvalid   = "BLOB_UPLOAD_INVALID"
	CodeBlobUploadUnknown   = "BLOB_UPLOAD_UNKNOWN"
	CodeDenied              = "DENIED"
	CodeDigestInvalid       = "DIGEST_INVALID"
	CodeManifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
	CodeManifestInvalid     = "MANIFEST_INVALID"
	CodeManifestUnknown     = "MANIFEST_UNKNOWN"
	CodeNameInvalid         = "NAME_INVALID"
	CodeNameUnknown         = "NAME_UNKNOWN"
	CodeSizeInvalid         = "SIZE_INVALID"
	CodeUnsupported         = "UNSUPPORTED"
)

// apiError is one entry of the spec's error body.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// errorBody is the JSON body of every error response.
type errorBody struct {
	Errors []apiError `json:"errors"`
}

// writeError sends status with a one-entry error body.
func writeError(w http.ResponseWriter, status int, code, message string, detail any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("Content-Length")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(errorBody{Errors: []apiError{{Code: code, Message: message, Detail: detail}}})
}

// storageError answers a failure of the registry's own storage and logs it. A full disk
// (or quota) is 507 Insufficient Storage with a message saying so: the client's request
// was fine, and pushing again once there is space works. Anything else is a 500 that
// names no path.
func (r *Registry) storageError(w http.ResponseWriter, req *http.Request, err error) {
	if full(err) {
		r.logger().Error("registry: no space left on device", "method", req.Method, "path", req.URL.Path, "err", err)
		writeError(w, http.StatusInsufficientStorage, "UNKNOWN",
			"no space left on device: the registry's disk is full; free space (drover registry gc removes what retention lets go) and push again", nil)
		return
	}
	r.logger().Error("registry: storage failed", "method", req.Method, "path", req.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "UNKNOWN", "internal storage error", nil)
}

// full reports a write that failed because the disk or the quota is full.
func full(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
