package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-cd/drover/internal/tlsca"
)

func caCommand() *cobra.Command {
	var server, data string
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Print the certificate of the server's own CA, for Docker nodes to trust its registry",
		Long: `Print the certificate (PEM) of the certificate authority the server made in DATA/ca to
issue its TLS listener's certificate (drover server --tls-listen without --tls-cert).

The Docker Engine pulls over plain HTTP only from registries on 127.0.0.0/8. A node on
another machine (a Swarm node pulling release images) pulls over HTTPS, and trusts the
server's certificate once this one is in /etc/docker/certs.d/HOST:PORT/ca.crt, HOST:PORT
being the server's --advertise address (the port always written out, 443 included).
No restart of the Engine is needed.

It asks the server at --server (GET /api/v1/ca, which needs no token), or, with --data,
reads the data folder of a server that need not run. The certificate's SHA-256
fingerprint goes to stderr: compare it with the ca_sha256 the server logs at start.
A server that serves the operator's certificate (--tls-cert) has no CA to print.`,
		Example: `  # on the server's machine, from the server or its data folder
  drover ca > ca.crt
  drover ca --data /var/lib/drover > ca.crt

  # on each Docker node, for a server started with --advertise https://10.0.0.1:8443
  sudo mkdir -p /etc/docker/certs.d/10.0.0.1:8443
  sudo cp ca.crt /etc/docker/certs.d/10.0.0.1:8443/ca.crt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var pemData []byte
			var err error
			if data != "" {
				pemData, err = caFromData(data)
			} else {
				pemData, err = caFromServer(cmd.Context(), server)
			}
			if err != nil {
				return err
			}
			block, _ := pem.Decode(pemData)
			if block == nil || block.Type != "CERTIFICATE" {
				return errors.New("the answer holds no PEM certificate")
			}
			if _, err := x509.ParseCertificate(block.Bytes); err != nil {
				return fmt.Errorf("the answer holds no valid certificate: %w", err)
			}
			if _, err := cmd.OutOrStdout().Write(pem.EncodeToMemory(block)); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "sha256 fingerprint %s\n", tlsca.Fingerprint(block.Bytes))
			return nil
		},
	}
	cmd.Flags().StringVar(&server, "server", defaultServer(), "Drover server URL (env DROVER_SERVER)")
	cmd.Flags().StringVar(&data, "data", "", "read the CA from this data folder (a server's --data) instead of asking a server")
	return cmd
}

// caFromData reads the CA certificate kept in the data folder data.
func caFromData(data string) ([]byte, error) {
	pemData, err := tlsca.ReadCert(filepath.Join(data, "ca"))
	if errors.Is(err, tlsca.ErrNoCA) {
		return nil, badInput(fmt.Errorf("%s has no CA: a server makes one when started with --tls-listen and without --tls-cert (%w)", data, err))
	}
	return pemData, err
}

// caFromServer asks the server at server for its CA certificate (no token needed).
func caFromServer(ctx context.Context, server string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(server, "/")+"/api/v1/ca", nil)
	if err != nil {
		return nil, badInput(fmt.Errorf("--server %s: %w", server, err))
	}
	resp, err := http.DefaultClient.Do(req)
	var unknown x509.UnknownAuthorityError
	if errors.As(err, &unknown) {
		// Its certificate comes from the very CA asked for: trusting it unseen would let
		// anyone in between hand out a CA of theirs.
		return nil, fmt.Errorf("%s serves a certificate this machine does not trust yet, likely one of the CA asked for: ask its plain --listen address, run drover ca --data DATA on the server's machine, or copy DATA/ca/ca.crt (%w)", server, err)
	}
	if err != nil {
		return nil, fmt.Errorf("reach the server at %s (is 'drover server' running?): %w", server, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read the server's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, answerError(resp.StatusCode, body)
	}
	return body, nil
}
