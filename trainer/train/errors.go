package train

import (
	"errors"
	"fmt"

	"github.com/preftune/preftune/trainer/contract"
)

// Error is a failure with the reason and exit code the operator sees.
type Error struct {
	// Reason is a CamelCase word: InvalidConfig, InvalidDataset, DatasetChanged, ReferenceUnreadable, Interrupted...
	Reason string
	// Code is the process exit code: contract.ExitInvalidInput (never retried) or contract.ExitFailed.
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Reasons of failures.
const (
	ReasonInvalidConfig       = "InvalidConfig"
	ReasonInvalidDataset      = "InvalidDataset"
	ReasonDatasetChanged      = "DatasetChanged"
	ReasonDatasetUnreadable   = "DatasetUnreadable"
	ReasonModelUnreadable     = "ModelUnreadable"
	ReasonReferenceUnreadable = "ReferenceUnreadable"
	ReasonCheckpointFailed    = "CheckpointFailed"
	ReasonInterrupted         = "Interrupted"
	ReasonDiverged            = "Diverged"
	ReasonTrainingFailed      = "TrainingFailed"
	// ReasonModelUnsupported and ReasonInsufficientMemory are the reasons of trainer/hf's UnsupportedError and
	// MemoryError (input that will never work: exit code contract.ExitInvalidInput).
	ReasonModelUnsupported   = contract.ReasonModelUnsupported
	ReasonInsufficientMemory = contract.ReasonInsufficientMemory
)

// reasoned is an error that names its own termination reason, as trainer/hf's errors do (ModelUnsupported,
// ModelUnreadable, InsufficientMemory). Such an error is about the input (the model, the memory limit), so a retry
// cannot cure it: it exits with contract.ExitInvalidInput.
type reasoned interface {
	error
	Reason() string
}

// reasonOf is the reason an error names itself (trainer/hf's ModelUnsupported, InsufficientMemory), or fallback
// for other errors and for hf's generic ModelUnreadable (the caller's reason says which model).
func reasonOf(err error, fallback string) string {
	var re reasoned
	if errors.As(err, &re) && re.Reason() != "" && re.Reason() != ReasonModelUnreadable {
		return re.Reason()
	}
	return fallback
}

// invalid is input that will never work: the Job must not retry.
func invalid(reason string, format string, args ...any) error {
	return &Error{Reason: reason, Code: contract.ExitInvalidInput, Err: fmt.Errorf(format, args...)}
}

// failed is a failure a retry may cure.
func failed(reason string, format string, args ...any) error {
	return &Error{Reason: reason, Code: contract.ExitFailed, Err: fmt.Errorf(format, args...)}
}

// ExitCode is the process exit code for err (nil: contract.ExitOK). A *FieldError is invalid input.
func ExitCode(err error) int {
	if err == nil {
		return contract.ExitOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return contract.ExitInvalidInput
	}
	var re reasoned
	if errors.As(err, &re) && re.Reason() != "" {
		return contract.ExitInvalidInput
	}
	return contract.ExitFailed
}

// ErrorMessage is the termination message's error for err.
func ErrorMessage(err error) *contract.Error {
	reason := ReasonTrainingFailed
	var e *Error
	var fe *FieldError
	var re reasoned
	switch {
	case errors.As(err, &e):
		reason = e.Reason
	case errors.As(err, &fe):
		reason = ReasonInvalidConfig
	case errors.As(err, &re) && re.Reason() != "":
		reason = re.Reason()
	}
	return &contract.Error{Reason: reason, Message: err.Error()}
}
