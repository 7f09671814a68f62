package broker

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Every error a client sees is a kerr error with Kafka's canonical code;
// this file is where internal errors become codes.

// codeOf returns the Kafka error code of err (0 for nil).
func codeOf(err error) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	var te *topicErr
	if errors.As(err, &te) {
		return te.code.Code
	}
	return kerr.UnknownServerError.Code
}

// messageOf returns a message for the client when err says more than its
// code's standard text, else nil.
func messageOf(err error) *string {
	if err == nil {
		return nil
	}
	var ke *kerr.Error
	if errors.As(err, &ke) && err.Error() == ke.Error() {
		return nil
	}
	msg := err.Error()
	return &msg
}

// requestTimeout bounds a request by its timeout_ms (adminWait when not
// positive: a wait is never unbounded).
func requestTimeout(ctx context.Context, ms int32) (context.Context, context.CancelFunc) {
	if ms <= 0 {
		return context.WithTimeout(ctx, adminWait)
	}
	return context.WithTimeout(ctx, time.Duration(ms)*time.Millisecond)
}
