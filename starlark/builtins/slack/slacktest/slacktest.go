// Package slacktest is a local stand-in for Slack, for tests of what posts
// to it (the slack integration, alert rules): the parts of Slack's Web API
// and incoming webhooks that the integration uses, as Slack documents them.
// No real Slack endpoint is reachable from this project's machines.
//
//   - POST /api/auth.test and /api/chat.postMessage
//     (https://docs.slack.dev/reference/methods/auth.test,
//     https://docs.slack.dev/reference/methods/chat.postMessage): the
//     arguments form-encoded or as JSON, the token in the Authorization
//     header as "Bearer xoxb-…" or as a token form field; the answer is HTTP
//     200 with {"ok": true, ...} or {"ok": false, "error": "channel_not_found"}
//     (not_authed without a token, invalid_auth with a wrong one, no_text
//     without text or blocks).
//   - POST to the incoming webhook's URL
//     (https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks):
//     a JSON message; "ok", or HTTP 400 invalid_payload, or 404 no_service
//     for a URL that is no webhook.
//   - HTTP 429 with Retry-After when rate limited (see FailNext)
//     (https://docs.slack.dev/apis/web-api/rate-limits).
package slacktest

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
)

// Server is a Slack stand-in on a loopback port. Close it when done.
type Server struct {
	*httptest.Server
	// Token is the bot token the Web API accepts.
	Token string
	// Channels are the channels that exist, by name ("#ops") to ID
	// ("C0OPS"); a post names either.
	Channels map[string]string

	hookPath string

	mu       sync.Mutex
	messages []Message
	fail     []Failure
	requests int
}

// Message is a message the stand-in accepted.
type Message struct {
	// Via is "chat.postMessage" or "webhook".
	Via string
	// Authorization is the request's Authorization header; FormToken a
	// token sent as a form field instead.
	Authorization, FormToken string
	// Channel is as posted (a name or an ID); ChannelID is its ID.
	Channel, ChannelID string
	Text               string
	// Blocks is the message's blocks as sent, JSON ("" if none).
	Blocks string
	// TS is the timestamp the stand-in gave it (chat.postMessage).
	TS string
}

// Failure is an answer the stand-in gives instead of serving a request.
type Failure struct {
	Status     int    // e.g. 429, 503
	RetryAfter string // the Retry-After header, if any
	Body       string
}

// NewServer starts a stand-in accepting token, with the channels #ops
// (C0OPS) and #general (C0GENERAL), and a webhook (WebhookURL) posting to
// #ops.
func NewServer(token string) *Server {
	s := &Server{Token: token, Channels: map[string]string{"#ops": "C0OPS", "#general": "C0GENERAL"},
		hookPath: "/services/T0DROVER/B0DROVER/whsecret7Q2rXk"}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// APIURL is the Web API's base URL, for slack's api_url.
func (s *Server) APIURL() string { return s.URL + "/api/" }

// WebhookURL is the incoming webhook's URL; its path holds a secret.
func (s *Server) WebhookURL() string { return s.URL + s.hookPath }

// FailNext makes the next requests get fs' answers, one each, in order.
func (s *Server) FailNext(fs ...Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = append(s.fail, fs...)
}

// Messages returns the messages accepted so far, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Requests returns how many requests the stand-in received.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if len(s.fail) > 0 {
		f := s.fail[0]
		s.fail = s.fail[1:]
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		w.WriteHeader(f.Status)
		io.WriteString(w, f.Body)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch r.URL.Path {
	case "/api/auth.test":
		if _, ok := s.webArgs(w, r); ok {
			answer(w, map[string]any{"ok": true, "url": "https://drover-test.slack.com/", "team": "Drover", "user": "drover", "team_id": "T0DROVER", "user_id": "U0DROVER", "bot_id": "B0DROVER"})
		}
	case "/api/chat.postMessage":
		args, ok := s.webArgs(w, r)
		if !ok {
			return
		}
		m := Message{Via: "chat.postMessage", Authorization: r.Header.Get("Authorization"), FormToken: args["token"],
			Channel: args["channel"], Text: args["text"], Blocks: args["blocks"]}
		if m.ChannelID = s.channelID(m.Channel); m.ChannelID == "" {
			answer(w, map[string]any{"ok": false, "error": "channel_not_found"})
			return
		}
		if m.Text == "" && m.Blocks == "" {
			answer(w, map[string]any{"ok": false, "error": "no_text"})
			return
		}
		if m.Blocks != "" && !json.Valid([]byte(m.Blocks)) {
			answer(w, map[string]any{"ok": false, "error": "invalid_blocks_format"})
			return
		}
		m.TS = fmt.Sprintf("1700000000.%06d", len(s.messages)+1)
		s.messages = append(s.messages, m)
		answer(w, map[string]any{"ok": true, "channel": m.ChannelID, "ts": m.TS, "message": map[string]any{"text": m.Text, "ts": m.TS}})
	case s.hookPath:
		var body struct {
			Text   string          `json:"text"`
			Blocks json.RawMessage `json:"blocks"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || (body.Text == "" && len(body.Blocks) == 0) {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, "invalid_payload")
			return
		}
		s.messages = append(s.messages, Message{Via: "webhook", Authorization: r.Header.Get("Authorization"), Channel: "#ops", ChannelID: "C0OPS",
			Text: body.Text, Blocks: string(body.Blocks)})
		io.WriteString(w, "ok")
	default:
		if strings.HasPrefix(r.URL.Path, "/services/") {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, "no_service")
			return
		}
		http.NotFound(w, r)
	}
}

// webArgs reads a Web API call's arguments and checks its token; it
// answers the error itself when it returns false.
func (s *Server) webArgs(w http.ResponseWriter, r *http.Request) (map[string]string, bool) {
	args := map[string]string{}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	body, _ := io.ReadAll(r.Body)
	switch ct {
	case "application/json":
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			answer(w, map[string]any{"ok": false, "error": "invalid_json"})
			return nil, false
		}
		for k, v := range m {
			if str, ok := v.(string); ok {
				args[k] = str
			} else {
				raw, _ := json.Marshal(v)
				args[k] = string(raw)
			}
		}
	default:
		form, err := url.ParseQuery(string(body))
		if err != nil {
			answer(w, map[string]any{"ok": false, "error": "invalid_form_data"})
			return nil, false
		}
		for k := range form {
			args[k] = form.Get(k)
		}
	}
	token := args["token"]
	if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		token = bearer
	}
	switch token {
	case "":
		answer(w, map[string]any{"ok": false, "error": "not_authed"})
		return nil, false
	case s.Token:
		return args, true
	}
	answer(w, map[string]any{"ok": false, "error": "invalid_auth"})
	return nil, false
}

// channelID is the ID of a channel named by name or ID, or "".
func (s *Server) channelID(c string) string {
	if id, ok := s.Channels[c]; ok {
		return id
	}
	for _, id := range s.Channels {
		if id == c {
			return id
		}
	}
	return ""
}

func answer(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	json.NewEncoder(w).Encode(v)
}
