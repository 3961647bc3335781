package deploy

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// The CloudFormation tests deploy the templates in one moto_server that the
// package's tests share, started on first use on a free port and stopped
// when the tests end. Each test works in a region of its own (EventBridge,
// SQS and CloudFormation state is per region in moto) and names its stacks
// and roles apart (IAM is global).

var moto struct {
	once sync.Once
	url  string
	err  error
	cmd  *exec.Cmd
	dir  string
	log  syncBuffer // moto's output, shown when it does not start
}

func TestMain(m *testing.M) {
	code := m.Run()
	if moto.cmd != nil {
		_ = moto.cmd.Process.Kill()
		_ = moto.cmd.Wait()
	}
	if moto.dir != "" {
		_ = os.RemoveAll(moto.dir)
	}
	removeBuilt()
	os.Exit(code)
}

// motoURL returns the base URL of the shared moto_server, starting it on
// first use. The test is skipped when moto_server is not installed.
func motoURL(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("moto_server"); err != nil {
		t.Skip("moto_server is not on PATH (pip install 'moto[server]'; the machine image and CI have it): the CloudFormation templates are not deployed")
	}
	moto.once.Do(func() { moto.url, moto.err = startMoto() })
	if moto.err != nil {
		t.Fatalf("moto_server: %v\n%s", moto.err, moto.log.String())
	}
	return moto.url
}

func startMoto() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	// moto's ValidateTemplate writes a scratch file where it runs.
	if moto.dir, err = os.MkdirTemp("", "stanch-deploy-moto-"); err != nil {
		return "", err
	}
	cmd := exec.Command("moto_server", "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Dir = moto.dir
	cmd.Stdout, cmd.Stderr = &moto.log, &moto.log
	if err := cmd.Start(); err != nil {
		return "", err
	}
	moto.cmd = cmd
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	// Bounded: moto starts in a second or two; a minute means it will not.
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if res, err := http.Get(url + "/moto-api/"); err == nil {
			_ = res.Body.Close()
			return url, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", fmt.Errorf("moto_server did not answer on %s within a minute", url)
}

// syncBuffer is written by moto's output copiers and read by tests.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// motoAccount is the account moto acts in for the static test credentials.
const motoAccount = "123456789012"

// awsConfig points the SDK at moto in region, as moto's default account.
func awsConfig(t *testing.T, region string) aws.Config {
	t.Helper()
	return aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIAMOTODEPLOYTEST00", "testing", ""),
		BaseEndpoint: aws.String(motoURL(t)),
	}
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
