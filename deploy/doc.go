// Package deploy holds what runs stanch in production: CloudFormation
// templates for the EventBridge rules and the member accounts' response
// role (cloudformation/), a systemd unit (systemd/) and a Dockerfile. Its
// tests deploy the templates in moto_server, check that the role's policy is
// what `stanch permissions` prints, and that the binary the Dockerfile
// builds is static. docs/deploy.md walks through a deployment.
package deploy
