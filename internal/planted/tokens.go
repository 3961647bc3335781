package planted

// Tokens are planted tokens of each kind stanch recognises: random, of the
// prefix and length each provider gives its tokens, so that they pass for
// real ones wherever shapes are checked (scanners, redaction). Find and
// RequireNone look for them as for the secrets above. Each is fake.
const (
	GitHubPAT            = "ghp_9naHVck6pbd4ZRj2SxphvDTwrzqwo72n3wZu"
	GitHubFineGrainedPAT = "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"
	GitHubOAuth          = "gho_5Ev3CYeW61YrEjhRFyya1q79VfsecC5d8qk0"
	GitHubUserToServer   = "ghu_FKE3FcGdE1fK9DoXWLCSUqRfNadvWP1yBwdN"
	GitHubRefresh        = "ghr_7TtMCtJ0bZB535ya5Q6wNy6HajqpFGvu6pRL"
	GitHubInstallation   = "ghs_uFuaMwSov7d2lP3GU8g1UKzv352ivguvDVNJ"
	SlackBot             = "xoxb-979169012723-9889556388187-Lk1TRX6vD3MKQ9AbrviWrwld"
	SlackUser            = "xoxp-793114317823-529056362592-8277779261647-70eac510ee0aee8ceec35aefae2675c3"
	SlackRefresh         = "xoxe-1-ZVU2QLR0HTORKQSJ26PJ47HPNZ1OS04Z4OUYWVYVVGI5OOEL7TQNP5Q5LP5XK7N98VHCQDOCWZV7SUUX09YA4O0EK1IHDFCY81WJM8WFIDW7Q76D26BJA24OJK6YPO1V5DH8LZSUGRJ7APQ2JZ"
	GitLabPAT            = "glpat-KjWCg-SvwzonLVxEqL3r"
	NPM                  = "npm_KEpSbiHP5QW1cY4YxBfEvMkP2SxYJdUPDdFQ"
	VaultService         = "hvs.CAESIQvEZU4YUWisJEpmiBZAOj3TBfWz21ccaskm9Ox07fomXtcq-KMNPV6FitNWQ-2IwN4LCaVWDZVGjbziUeMDMcb"
	VaultBatch           = "hvb.AAAAAQxsrhOzOkItgDcwnGBy2LqEsaOgqaHslPqAVnXuigvEJwyOvgh1owW-j6E8ODDWrMGpMJE_U-S296-5zBQ4TGLQjV206Hs7jrdZVf4CH92y6PCEksBORYfw9n8Ow6dbDqI0Eu"
	VaultLegacyService   = "s.Q2Jq8OS0Ie8l0iAjg5JbyuM2"
)

// AllTokens are the planted tokens.
var AllTokens = []string{GitHubPAT, GitHubFineGrainedPAT, GitHubOAuth, GitHubUserToServer, GitHubRefresh, GitHubInstallation,
	SlackBot, SlackUser, SlackRefresh, GitLabPAT, NPM, VaultService, VaultBatch, VaultLegacyService}
