# The web tier's release as the deploy pipeline applies it (`terraform apply` here, state
# in terraform.tfstate next to this file). `terraform_data` keeps the values in state with
# no cloud provider, so the example runs offline on the local backend; a real workdir
# declares its provider resources the same way.
terraform {
  required_version = ">= 1.4"
}

variable "change_reason" {
  description = "Why this version was applied; the revert runbook says which incident."
  type        = string
  default     = "deploy pipeline"
}

resource "terraform_data" "release" {
  input = {
    version         = "2.5.0"
    max_connections = "5"
  }
}

resource "terraform_data" "change_reason" {
  input = var.change_reason
}

output "release" {
  value = terraform_data.release.output
}
