# remediator: the service, ansible-playbook and terraform in one image.
FROM python:3.12-slim

ARG TERRAFORM_VERSION=1.11.4
# ssh for playbooks against real hosts, git for terraform reverts, curl+unzip for terraform.
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssh-client git curl unzip ca-certificates \
 && curl -fsSL -o /tmp/tf.zip \
      "https://releases.hashicorp.com/terraform/${TERRAFORM_VERSION}/terraform_${TERRAFORM_VERSION}_linux_amd64.zip" \
 && unzip /tmp/tf.zip terraform -d /usr/local/bin && rm /tmp/tf.zip \
 && apt-get purge -y curl unzip && apt-get autoremove -y && rm -rf /var/lib/apt/lists/* \
 && git config --system --add safe.directory '*'
# (The repository is mounted from the host and owned by another uid; git refuses to read
# such a repository unless it is named safe, and it is only ever read here.)

WORKDIR /srv
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install --no-cache-dir . && useradd --create-home --uid 1000 remediator
# Runbooks, playbooks and terraform are mounted as volumes (see docker-compose.yml);
# the image carries the repository's examples so it also runs on its own.
COPY remediator.yaml ./
COPY runbooks ./runbooks
COPY playbooks ./playbooks
COPY terraform ./terraform

USER remediator
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2)"]
ENTRYPOINT ["remediator"]
CMD ["serve", "--config", "/srv/remediator.yaml", "--host", "0.0.0.0", "--port", "8080"]
