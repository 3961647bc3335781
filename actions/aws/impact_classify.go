package aws

// Categories of CloudTrail events that matter after a key leaked, most
// urgent first (the order findings are listed in).
var findingCategories = []string{"defence_evasion", "persistence", "privilege_escalation", "data_access", "compute_abuse", "reconnaissance"}

// riskyEvents classifies event names. The lists follow AWS's own list of
// abuse-prone actions (the compromised-key quarantine policies) and the
// GuardDuty tactic descriptions.
var riskyEvents = map[string]string{
	// Turning off what would see the attacker.
	"StopLogging": "defence_evasion", "DeleteTrail": "defence_evasion", "UpdateTrail": "defence_evasion",
	"PutEventSelectors": "defence_evasion", "DeleteDetector": "defence_evasion", "UpdateDetector": "defence_evasion",
	"DeleteFlowLogs": "defence_evasion", "UpdateAccountPasswordPolicy": "defence_evasion", "DisableSecurityHub": "defence_evasion",
	// Staying in: new identities and credentials.
	"CreateUser": "persistence", "CreateAccessKey": "persistence", "CreateLoginProfile": "persistence",
	"UpdateLoginProfile": "persistence", "AddUserToGroup": "persistence", "CreateRole": "persistence",
	"UpdateAssumeRolePolicy": "persistence", "GetSessionToken": "persistence", "GetFederationToken": "persistence",
	// Getting more rights.
	"AttachUserPolicy": "privilege_escalation", "AttachRolePolicy": "privilege_escalation", "AttachGroupPolicy": "privilege_escalation",
	"PutUserPolicy": "privilege_escalation", "PutRolePolicy": "privilege_escalation", "PutGroupPolicy": "privilege_escalation",
	"CreatePolicyVersion": "privilege_escalation", "SetDefaultPolicyVersion": "privilege_escalation", "PassRole": "privilege_escalation",
	"AssumeRole": "privilege_escalation",
	// Reading what is valuable.
	"GetSecretValue": "data_access", "BatchGetSecretValue": "data_access", "GetPasswordData": "data_access",
	"GenerateDbAuthToken": "data_access", "ListBuckets": "data_access", "PutBucketPolicy": "data_access",
	"PutBucketAcl": "data_access", "GetParameter": "data_access", "GetParameters": "data_access",
	// Spending the victim's money.
	"RunInstances": "compute_abuse", "RequestSpotInstances": "compute_abuse", "StartInstances": "compute_abuse",
	"CreateFunction": "compute_abuse", "CreateAccount": "compute_abuse",
	// Looking around.
	"GetCallerIdentity": "reconnaissance", "ListUsers": "reconnaissance", "ListAccessKeys": "reconnaissance",
	"GetAccountAuthorizationDetails": "reconnaissance", "GetSendQuota": "reconnaissance", "ListIdentities": "reconnaissance",
	"ListRoles": "reconnaissance", "ListAttachedUserPolicies": "reconnaissance",
}
