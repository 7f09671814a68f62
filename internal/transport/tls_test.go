package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// testTLS returns a config that serves and trusts one self-signed
// certificate for 127.0.0.1, requiring it from clients too.
func testTLS(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "chronik-test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
}

// TestTransportTLS: with a TLS config both directions run over TLS, and a
// plaintext dialer is turned away without anything delivered.
func TestTransportTLS(t *testing.T) {
	cfg := testTLS(t)
	lns, addrs := reserve(t, 1, 2)
	r1, r2 := &recorder{}, &recorder{}
	withTLS := func(o *Options) { o.TLS = cfg }
	n1 := startTransport(t, 1, lns[1], addrs, r1.deliver, withTLS)
	defer n1.stop(t)
	n2 := startTransport(t, 2, lns[2], addrs, r2.deliver, withTLS)
	defer n2.stop(t)
	n1.waitConnected(t, 2)
	n2.waitConnected(t, 1)
	n1.tr.Send(3, []*pb.Message{msg(pb.MsgHeartbeat, 1, 2, 3, 1, 0), msg(pb.MsgApp, 1, 2, 3, 1, 4096)})
	n2.tr.Send(3, []*pb.Message{msg(pb.MsgVote, 2, 1, 3, 1, 0)})
	waitFor(t, "delivery over TLS", func() bool { return r2.count() == 2 && r1.count() == 1 })

	c, err := net.Dial("tcp", n1.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := hello{version: protocolVersion, lane: Control, sender: 2, receiver: 1, incarnation: 1, clusterID: testCluster}
	_, _ = c.Write(append(h.encode(), frameOf(t, 3, msg(pb.MsgHeartbeat, 2, 1, 3, 9, 0))...))
	if !closedByPeer(c) {
		t.Fatal("plaintext connection not closed")
	}
	if r1.count() != 1 {
		t.Fatal("a plaintext message was delivered")
	}
}
