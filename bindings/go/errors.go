package statefulroute

// #include "stateful_route.h"
import "C"

import "fmt"

// Code is the kind of an error, one per error kind of the library (SPEC §8), with the same
// numbers as the C status codes. A Code is itself an error, so that
//
//	errors.Is(err, statefulroute.ErrNoAvailablePod)
//
// matches any [*Error] of that kind.
type Code int

// The error codes, in the order of the C status codes.
const (
	ErrInvalidArgument   Code = C.SR_INVALID_ARGUMENT
	ErrInvalidConfig     Code = C.SR_INVALID_CONFIG
	ErrNamespaceNotLocal Code = C.SR_NAMESPACE_NOT_LOCAL
	ErrNoAvailablePod    Code = C.SR_NO_AVAILABLE_POD
	ErrPodUnavailable    Code = C.SR_POD_UNAVAILABLE
	ErrStoreUnavailable  Code = C.SR_STORE_UNAVAILABLE
	ErrStoreError        Code = C.SR_STORE_ERROR
	ErrTimeout           Code = C.SR_TIMEOUT
	ErrClosed            Code = C.SR_CLOSED
	ErrInternal          Code = C.SR_INTERNAL
)

// String is the code every binding shows, e.g. "NO_AVAILABLE_POD" (the library's
// sr_status_name, which is the core's).
func (c Code) String() string {
	if c.valid() {
		return C.GoString(C.sr_status_name(C.int32_t(c)))
	}
	return fmt.Sprintf("Code(%d)", int(c))
}

func (c Code) valid() bool { return c >= ErrInvalidArgument && c <= ErrInternal }

// Error makes a Code usable as a sentinel with errors.Is.
func (c Code) Error() string { return c.String() }

// Error is every error this package returns from the library.
type Error struct {
	// Code is the kind.
	Code Code
	// Message says what was wrong and with which value ("CODE: ...").
	Message string
	// PodIndex is, for ErrPodUnavailable, the pod the user is persistently linked to; else -1.
	PodIndex int
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code.String()
	}
	return e.Message
}

// Is reports whether target is e's Code (errors.Is(err, ErrClosed)) or an *Error of the same
// Code.
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case Code:
		return t == e.Code
	case *Error:
		return t.Code == e.Code
	}
	return false
}

// As lets errors.As extract the Code alone: var c Code; errors.As(err, &c).
func (e *Error) As(target any) bool {
	if c, ok := target.(*Code); ok {
		*c = e.Code
		return true
	}
	return false
}

func takeError(st uint32, e *C.sr_error) error {
	if st == C.SR_OK {
		return nil
	}
	err := &Error{Code: Code(st), PodIndex: -1}
	if e != nil {
		err.Message = C.GoString(C.sr_error_message(e))
		err.PodIndex = int(C.sr_error_pod_index(e))
		C.sr_error_free(e)
	}
	return err
}

func closedError(what string) error {
	return &Error{Code: ErrClosed, Message: "CLOSED: " + what + " is closed", PodIndex: -1}
}
