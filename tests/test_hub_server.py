"""The local Hub server answers the real huggingface_hub client like the Hub does (no mocking)."""
from __future__ import annotations

import pytest
from huggingface_hub import CommitOperationAdd, HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub import errors as hf_errors

from tests.hub_server import git_blob_sha


@pytest.fixture()
def api(local_hub) -> HfApi:
    return HfApi(endpoint=local_hub.url, token=local_hub.token)


def test_create_commit_list_download(local_hub, api):
    repo_id = local_hub.unique_id("server")
    url = api.create_repo(repo_id)
    assert str(url).endswith(repo_id)
    with pytest.raises(hf_errors.HfHubHTTPError) as exists:
        api.create_repo(repo_id)
    assert exists.value.response.status_code == 409
    api.create_repo(repo_id, exist_ok=True)
    info = api.create_commit(repo_id, [CommitOperationAdd("a/b.txt", b"hello"), CommitOperationAdd("c.txt", b"x")],
                             commit_message="add")
    assert sorted(api.list_repo_files(repo_id)) == [".gitattributes", "a/b.txt", "c.txt"]
    assert api.model_info(repo_id).sha == info.oid
    path = hf_hub_download(repo_id, "a/b.txt", revision=info.oid)
    assert open(path, "rb").read() == b"hello"
    meta = get_hf_file_metadata(hf_hub_url(repo_id, "a/b.txt"))
    assert meta.commit_hash == info.oid and meta.size == 5 and meta.etag == git_blob_sha(b"hello")
    with pytest.raises(hf_errors.EntryNotFoundError):
        hf_hub_download(repo_id, "missing.txt")


def test_unchanged_files_make_no_commit(local_hub, api):
    repo_id = local_hub.unique_id("server")
    api.create_repo(repo_id)
    first = api.create_commit(repo_id, [CommitOperationAdd("f.txt", b"same")], commit_message="one")
    again = api.create_commit(repo_id, [CommitOperationAdd("f.txt", b"same")], commit_message="two")
    assert again.oid == first.oid
    assert api.model_info(repo_id).sha == first.oid


def test_stale_parent_commit_is_refused(local_hub, api):
    repo_id = local_hub.unique_id("server")
    api.create_repo(repo_id)
    parent = api.model_info(repo_id).sha
    api.create_commit(repo_id, [CommitOperationAdd("x.txt", b"1")], commit_message="x", parent_commit=parent)
    with pytest.raises(hf_errors.HfHubHTTPError) as err:
        api.create_commit(repo_id, [CommitOperationAdd("y.txt", b"2")], commit_message="y", parent_commit=parent)
    assert err.value.response.status_code == 412
    assert "y.txt" not in api.list_repo_files(repo_id)


def test_pull_request_and_discussions(local_hub, api):
    repo_id = local_hub.unique_id("server")
    api.create_repo(repo_id)
    info = api.create_commit(repo_id, [CommitOperationAdd("README.md", b"# new card\n")], commit_message="card",
                             commit_description="why", create_pr=True)
    assert info.pr_num == 1 and info.pr_url.endswith("/discussions/1")
    assert "README.md" not in api.list_repo_files(repo_id)
    assert "README.md" in api.list_repo_files(repo_id, revision="refs/pr/1")
    [discussion] = list(api.get_repo_discussions(repo_id))
    assert discussion.is_pull_request and discussion.title == "card" and discussion.status == "open"
    details = api.get_discussion_details(repo_id, 1)
    assert "+# new card" in details.diff and details.target_branch == "refs/heads/main"


def test_card_data_and_base_model_tags(local_hub, api):
    repo_id = local_hub.make_model(card={"base_model": "org/base", "license": "mit", "pipeline_tag": "text-generation"},
                                   config={"architectures": ["LlamaForCausalLM"], "model_type": "llama"})
    info = api.model_info(repo_id)
    assert info.card_data["base_model"] == "org/base"
    assert {"base_model:org/base", "base_model:finetune:org/base", "license:mit"} <= set(info.tags)
    assert info.pipeline_tag == "text-generation" and info.config["model_type"] == "llama"


def test_malformed_readme_is_rejected_on_commit(local_hub, api):
    repo_id = local_hub.unique_id("server")
    api.create_repo(repo_id)
    with pytest.raises(ValueError, match="Invalid metadata"):
        api.upload_file(path_or_fileobj=b"---\nbase_model: [oops\n---\n", path_in_repo="README.md", repo_id=repo_id)


def test_private_and_gated_access(local_hub, api, no_token):
    private = local_hub.make_model(card={"license": "mit"}, private=True)
    gated = local_hub.make_model(card={"license": "mit"}, gated=True)
    anonymous = HfApi(endpoint=local_hub.url, token=False)
    with pytest.raises(hf_errors.RepositoryNotFoundError):
        anonymous.model_info(private)
    assert api.model_info(private).private is True
    assert anonymous.model_info(gated).gated == "auto"  # metadata is public, files are not
    with pytest.raises(hf_errors.GatedRepoError):
        hf_hub_download(gated, "README.md", token=False)
    with pytest.raises(hf_errors.GatedRepoError):
        hf_hub_download(gated, "README.md", token=local_hub.other_token)
    assert hf_hub_download(gated, "README.md", token=local_hub.token)


def test_tree_paths_info_and_list_models(local_hub, api):
    repo_id = local_hub.make_model(files={"d/e/f.txt": "1", "d/g.txt": "2"})
    top = {e.path for e in api.list_repo_tree(repo_id)}
    assert top == {".gitattributes", "d"}
    deep = {e.path for e in api.list_repo_tree(repo_id, recursive=True)}
    assert {"d", "d/e", "d/e/f.txt", "d/g.txt"} <= deep
    infos = api.get_paths_info(repo_id, ["d/g.txt", "d", "nope"])
    assert sorted(i.path for i in infos) == ["d", "d/g.txt"]
    assert repo_id in {m.id for m in api.list_models(author=local_hub.org)}
