// Package testkit is what stanch's tests share instead of copying: a
// sandbox serving for one test with clients ready to call it (Sandbox), a
// step of one action decoded and run as the runner runs it (RunAction,
// PlanAction), a fake provider whose actions count their effects (World),
// and the stores every store-backed test runs on (StoreURLs). Only tests
// import it. The assertion that no planted secret shows anywhere is
// planted.RequireNone; the responder's key is sandbox.ResponderKeyID.
//
// It imports no package whose tests use it in-package (runner, notify,
// triggers, cmd): those tests could not import it otherwise.
package testkit
