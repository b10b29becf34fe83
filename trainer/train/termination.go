package train

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/preftune/preftune/trainer/contract"
)

// EncodeTermination renders msg compactly, within contract.MaxTerminationMessageBytes: when it is too long it drops
// the oldest checkpoints, then warnings, then cuts the error message, rather than lose the whole document.
func EncodeTermination(msg contract.TerminationMessage) ([]byte, error) {
	limit := contract.MaxTerminationMessageBytes - 96 // leave the kubelet room for its own framing
	for {
		data, err := json.Marshal(msg)
		if err != nil {
			return nil, err
		}
		if len(data) <= limit {
			return data, nil
		}
		switch {
		case msg.Result != nil && len(msg.Result.Checkpoints) > 1:
			r := *msg.Result
			r.Checkpoints = r.Checkpoints[1:]
			msg.Result = &r
		case msg.Result != nil && len(msg.Result.Warnings) > 0:
			r := *msg.Result
			r.Warnings = r.Warnings[:len(r.Warnings)-1]
			msg.Result = &r
		case msg.Error != nil && len(msg.Error.Message) > 64:
			e := *msg.Error
			cut := len(e.Message) - (len(data) - limit) - 16
			if cut < 64 {
				cut = 64
			}
			e.Message = truncateUTF8(e.Message, cut) + " [truncated]"
			msg.Error = &e
		default:
			return nil, fmt.Errorf("termination message of %d bytes does not fit %d", len(data), limit)
		}
	}
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// WriteTermination writes msg to path (the container's termination-log). An empty path writes nothing.
func WriteTermination(path string, msg contract.TerminationMessage) error {
	if path == "" {
		return nil
	}
	data, err := EncodeTermination(msg)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
