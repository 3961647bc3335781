package alert

import (
	"encoding/json"
	"math/rand/v2"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stanchhq/stanch/internal/planted"
)

const plantedKeyID = "AKIAIOSFODNN7EXAMPLE"

var (
	plantedRandom  = planted.Random
	plantedNoDigit = planted.NoDigit
	plantedNoUpper = planted.NoUpper
	plantedAfterID = planted.AfterKeyID
	plantedInPath  = planted.InPath
	plantedInURL   = planted.InURL
)

// requireNoPiece fails if any piece of a planted secret is in text.
func requireNoPiece(t *testing.T, text, _, where string) {
	t.Helper()
	planted.RequireNone(t, where, text)
}

// The red-team pass found secrets that fixed 40-character windows missed
// or cut in two, and URLs that were never redacted.
func TestRedactTextRemovesEveryPlantedSecret(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"alone":             plantedRandom,
		"no digit":          "the secret is " + plantedNoDigit,
		"no upper case":     "export AWS_SECRET=x; value " + plantedNoUpper + ".",
		"after its key id":  plantedKeyID + plantedAfterID,
		"after its key id:": "aws_access_key_id/" + plantedKeyID + plantedAfterID + "/done",
		"in a path":         "src/main/resources/config/" + plantedInPath + "/application-production.yaml",
		"in a camel path":   "deployConfigurationFor" + plantedInPath + "ProductionEnvironment",
		"url-encoded query": "https://ci.example.com/job/42/console?AWS_SECRET_ACCESS_KEY=" + url.QueryEscape(plantedInURL) + "&branch=main",
		"encoded twice":     "https://ci.example.com/?next=" + url.QueryEscape("https://ci.example.com/job?token="+url.QueryEscape(plantedInURL)),
		"encoded unnamed":   "https://ci.example.com/logs/" + url.PathEscape(strings.ReplaceAll(plantedInURL, "/", "%2F")),
		"every byte":        "https://example.com/?q=" + everyByteEscaped(plantedRandom),
		"json in text":      `{"aws_secret_access_key": "` + plantedNoUpper + `"}`,
		"env line":          "AWS_SECRET_ACCESS_KEY=" + plantedRandom,
		"plus as space":     "https://ci.example.com/?x=" + strings.ReplaceAll(plantedNoDigit, "+", "%2B"),
	}
	for name, text := range cases {
		out := RedactText(text)
		require.Contains(t, out, Redacted, name)
		requireNoPiece(t, out, "", name)
		require.Equal(t, out, RedactText(out), "%s: redacting twice changes nothing", name)
	}
	require.Equal(t, plantedKeyID+Redacted, RedactText(plantedKeyID+plantedAfterID), "the key id is kept")
	require.Equal(t, "https://ci.example.com/job/42/console?AWS_SECRET_ACCESS_KEY="+Redacted+"&branch=main", RedactText(cases["url-encoded query"]),
		"the URL keeps everything but the secret, escapes and all")
}

func everyByteEscaped(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteString("%" + strings.ToUpper(string("0123456789abcdef"[s[i]>>4])+string("0123456789abcdef"[s[i]&15])))
	}
	return b.String()
}

// Offsets are bytes: a character of several bytes before a secret used to
// shift what was removed (the fuzzer found it).
func TestRedactTextAroundMultibyteCharacters(t *testing.T) {
	t.Parallel()
	in := "token\":\ufffd " + plantedRandom + "0 – ✓ é password=ü"
	want := "token\":" + Redacted + " " + Redacted + " – ✓ é password=" + Redacted
	require.Equal(t, want, RedactText(in))
	require.Equal(t, want, RedactText(want))
}

// Values of secret-named parameters go whatever their shape, also inside
// URLs after decoding; identifiers named like secrets stay.
func TestRedactTextNamedValues(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"pushed ghp_EXAMPLEexampleEXAMPLEexample0123456789 by mistake":                "pushed " + Redacted + " by mistake",
		"slack xoxb-123456789012-1234567890123-ExampleExampleExample1234":             "slack " + Redacted,
		"github_personal_access_token":                                                "github_personal_access_token",
		"https://x.example/cb?code=1&client_secret=hunter2&state=ok":                  "https://x.example/cb?code=1&client_secret=" + Redacted + "&state=ok",
		"https://x.example/?X-Amz-Signature=abc%3D%3D&X-Amz-Date=2026":                "https://x.example/?X-Amz-Signature=" + Redacted + "&X-Amz-Date=2026",
		"https://x.example/?sig%3Dpa55word":                                           "https://x.example/?sig%3D" + Redacted,
		"password: correct horse":                                                     "password: " + Redacted + " horse",
		`"Password": "correct horse battery"`:                                         `"Password": "` + Redacted + `"`,
		"key=" + plantedKeyID:                                                         "key=" + plantedKeyID,
		"secret_type=aws_secret_access_key access_key_id=" + plantedKeyID:             "secret_type=aws_secret_access_key access_key_id=" + plantedKeyID,
		"hide_secret=true":                                                            "hide_secret=true",
		"arn:aws:secretsmanager:us-east-1:111122223333:secret:iam-user/ci-bot-AbCdEf": "arn:aws:secretsmanager:us-east-1:111122223333:secret:iam-user/ci-bot-AbCdEf",
	} {
		require.Equal(t, want, RedactText(in), in)
	}
}

// What identifies without authenticating stays, and ordinary words and
// paths are not destroyed.
func TestRedactTextKeepsWhatIdentifies(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"deploy/settings.py",
		"acme/payments-service",
		plantedKeyID,
		"IAM_USER/ci-bot/" + plantedKeyID,
		"ASIAIOSFODNN7SESSION",
		"4f1c9d2a7e3b5c6d8e9f0a1b2c3d4e5f6a7b8c9d", // a commit SHA
		"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", // a digest
		"6d4e3f2a-1b2c-4d5e-8f9a-0b1c2d3e4f5a",
		"https://github.com/acme/payments-service/blob/4f1c9d2a7e3b5c6d8e9f0a1b2c3d4e5f6a7b8c9d/deploy/settings.py#L12",
		"https://github.com/acme/payments-service/security/secret-scanning/42",
		"arn:aws:health:us-east-1::event/RISK/AWS_RISK_CREDENTIALS_EXPOSED/AWS_RISK_CREDENTIALS_EXPOSED-1a2b3c4d",
		"health:arn:aws:health:global::event/SECURITY/AWS_RISK_CREDENTIALS_EXPOSED/AWS_RISK_CREDENTIALS_EXPOSED_ABC123:" + plantedKeyID,
		"arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_AdministratorAccess_1a2b3c4d5e6f7a8b/alice@example.com",
		"src/main/java/com/example/payments/config/AwsCredentialsConfiguration.java",
		"node_modules/@babel/plugin-transform-runtime/lib/helpers/interopRequireDefault.js",
		"terraform/modules/iam-user-ci-bot/environments/production-eu-west-1/main.tf",
		"UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
		"GitHub secret scanning: Amazon AWS Secret Access Key in acme/payments-service (key id from the paired alert #43)",
		"stanch run run_01jd8x9q2w3e4r5t6y7u8i9o0p (aws-key-leaked): access key AKIAIOSFODNN7EXAMPLE of ci-bot deactivated (done)",
		"getSecretValueForAccessKeyIdFromHTTPResponseBody",
		"thisisalongidentifierwithoutanyseparatorsatall",
		"a+b c+d https://example.com/search?q=deploy+settings",
		// The SDK's errors: what follows an operation's or an exception's
		// name is its message, not a value.
		"iam:GetAccessKeyLastUsed: operation error IAM: GetAccessKeyLastUsed, https response error StatusCode: 403",
		"secretsmanager:GetSecretValue: operation error Secrets Manager: GetSecretValue, ResourceNotFoundException: Secrets Manager can't find the specified secret.",
		"ExpiredTokenException: The security token included in the request is expired",
	} {
		require.Equal(t, s, RedactText(s))
	}
}

// Every random AWS secret goes, whatever its classes of characters: the
// old rule let through those without a digit, or without upper or lower
// case. The draw is seeded, so the test is the same every time.
func TestRedactTextRandomSecrets(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		alphabet string
		missable int // per 20,000
	}{
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+", 0},
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz/+", 0},
		{"abcdefghijklmnopqrstuvwxyz0123456789/+", 2},
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/+", 2},
	} {
		missed := 0
		for range 20000 {
			b := make([]byte, 40)
			for i := range b {
				b[i] = c.alphabet[rng.IntN(len(c.alphabet))]
			}
			if RedactText("secret "+string(b)+" end") != "secret "+Redacted+" end" {
				missed++
			}
		}
		require.LessOrEqual(t, missed, c.missable, "alphabet %s", c.alphabet)
	}
}

// Redact reaches every string-valued field of an alert, whatever fields
// are added later.
func TestAlertRedactCoversEveryStringField(t *testing.T) {
	t.Parallel()
	var a Alert
	var fill func(v reflect.Value)
	fields := 0
	fill = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Struct:
			for i := range v.NumField() {
				fill(v.Field(i))
			}
		case reflect.String:
			v.SetString("x " + plantedRandom + " y")
			fields++
		}
	}
	fill(reflect.ValueOf(&a).Elem())
	a.Raw = json.RawMessage(`{"note":"` + plantedRandom + `","k":"` + plantedNoDigit + `"}`)
	a.Redact()
	out, err := json.Marshal(a)
	require.NoError(t, err)
	requireNoPiece(t, string(out), plantedRandom, "the redacted alert")
	requireNoPiece(t, string(out), plantedNoDigit, "the redacted alert")
	require.Greater(t, fields, 12)
}

// Parse redacts every field before anything reads it, and its errors
// quote no secret.
func TestParseRedactsEveryField(t *testing.T) {
	t.Parallel()
	doc := `{"source":"manual","title":"leaked ` + plantedRandom + `",
		"credential":{"id":"` + plantedKeyID + `","principal":"ci-bot/` + plantedNoDigit + `"},
		"location":{"repo":"acme/api","path":"config/` + plantedInPath + `/settings.py","commit":"` + plantedNoUpper + `",
			"url":"https://ci.example.com/job/7?AWS_SECRET_ACCESS_KEY=` + url.QueryEscape(plantedInURL) + `"},
		"raw":{"Secret":"` + plantedAfterID + `","note":"` + plantedKeyID + plantedAfterID + `"}}`
	a, err := Parse([]byte(doc), now)
	require.NoError(t, err)
	out, err := json.Marshal(a)
	require.NoError(t, err)
	requireNoPiece(t, string(out), "", "the parsed alert")
	require.Equal(t, plantedKeyID, a.Credential.ID)
	require.Equal(t, "https://ci.example.com/job/7?AWS_SECRET_ACCESS_KEY="+Redacted, a.Location.URL)
	require.Equal(t, "acme/api", a.Location.Repo)

	for _, bad := range []string{
		`{"source":"manual","credential":{"id":"` + plantedKeyID + `"},"` + plantedRandom + `":1}`,
		`{"source":"manual","credential":{"provider":"aws","id":"` + plantedRandom + `"}}`,
		`{"source":"manual","credential":{"id":"` + plantedKeyID + plantedAfterID + `"}}`,
		`{"source":"manual","credential":{"id":"` + plantedKeyID + `","account":"` + plantedNoDigit + `"},"severity":"` + plantedNoUpper + `"}`,
	} {
		_, err := Parse([]byte(bad), now)
		require.ErrorIs(t, err, ErrInvalid, bad)
		requireNoPiece(t, err.Error(), "", "the error")
	}
}

// A credential id that is a secret is replaced by a fingerprint, which
// still tells two credentials apart.
func TestRedactFingerprintsASecretCredentialID(t *testing.T) {
	t.Parallel()
	a := Alert{Source: "manual", Credential: Credential{Provider: "github", ID: "ghp_" + plantedRandom[:36]}}
	b := Alert{Source: "manual", Credential: Credential{Provider: "github", ID: "ghp_" + plantedNoDigit[:36]}}
	a.Redact()
	b.Redact()
	require.True(t, strings.HasPrefix(a.Credential.ID, "sha256:"), a.Credential.ID)
	require.NotEqual(t, a.Credential.ID, b.Credential.ID)
	a.Normalise(now)
	require.Equal(t, "manual:github:"+a.Credential.ID, a.DedupKey)
}

func TestRedactJSON(t *testing.T) {
	t.Parallel()
	in := `{"secret":"` + plantedKeyID + `","SecretAccessKey":"` + plantedNoUpper + `","token":"ghp_abcdef","Raw":"` + plantedKeyID + plantedAfterID + `",
		"secret_type":"aws_secret_access_key","accessKeyId":"` + plantedKeyID + `","nested":[{"password":"short"}],"` + plantedInPath + `":"a key"}`
	out := string(RedactJSON([]byte(in)))
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	require.Equal(t, plantedKeyID, got["secret"], "a bare key id identifies")
	require.Equal(t, Redacted, got["SecretAccessKey"])
	require.Equal(t, Redacted, got["token"], "named values go whatever their shape")
	require.Equal(t, plantedKeyID+Redacted, got["Raw"])
	require.Equal(t, "aws_secret_access_key", got["secret_type"])
	require.Equal(t, plantedKeyID, got["accessKeyId"])
	require.Equal(t, Redacted, got["nested"].([]any)[0].(map[string]any)["password"])
	require.Equal(t, "a key", got[Redacted], "field names are redacted too")
	requireNoPiece(t, out, "", "the document")
}

func TestRedactError(t *testing.T) {
	t.Parallel()
	err := RedactError(&json.UnsupportedValueError{Str: plantedRandom})
	require.Contains(t, err.Error(), Redacted)
	var uv *json.UnsupportedValueError
	require.ErrorAs(t, err, &uv, "what it wraps is still there")
	plain := ErrInvalid
	require.Same(t, plain, RedactError(plain), "an error with nothing to redact is returned as it is")
}

func BenchmarkRedactText(b *testing.B) {
	for _, c := range []struct{ name, text string }{
		{"title", "GitHub secret scanning: Amazon AWS Secret Access Key in acme/payments-service (key id from the paired alert #43)"},
		{"url", "https://ci.example.com/job/deploy/42/console?AWS_SECRET_ACCESS_KEY=" + url.QueryEscape(planted.InURL) + "&branch=main"},
		{"journal", "stanch run run_01jd8x9q2w3e4r5t6y7u8i9o0p (aws-key-leaked): access key AKIAIOSFODNN7EXAMPLE of ci-bot deactivated (done), " + planted.Random},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				RedactText(c.text)
			}
		})
	}
}
