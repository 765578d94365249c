//! The two HTML pages: the landing page at `/` and a repository's page.
//!
//! Deliberately small and static: graspd is not a web git client, so the pages say
//! what is served here and link to the git-nostr web clients that render repositories.

use crate::repo::RepoPath;

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}\
         code{{background:#f2f2f2;padding:.1rem .3rem;border-radius:3px;word-break:break-all}}</style>\
         </head><body>\n{body}\n</body></html>\n"
    )
}

/// The landing page: what this server is and its URLs.
pub fn landing_page(name: &str, description: &str, public_base: &str, relay_url: &str) -> String {
    let name = escape(name);
    let body = format!(
        "<h1>{name}</h1>\n<p>{description}</p>\n\
         <p>This is a <a href=\"https://github.com/nostr-protocol/nips/blob/master/34.md\">NIP-34</a> \
         git server (GRASP): a nostr relay and a git smart-HTTP server in one. Pushes are \
         authorized by signed repository state events.</p>\n<ul>\n\
         <li>Relay: <code>{relay}</code></li>\n\
         <li>Git repositories: <code>{base}/&lt;npub&gt;/&lt;identifier&gt;.git</code></li>\n\
         <li>Relay information (NIP-11): <code>GET /</code> with <code>Accept: application/nostr+json</code></li>\n\
         </ul>\n<p>To host a repository here, list <code>{base}/&lt;your npub&gt;/&lt;identifier&gt;.git</code> \
         in your announcement's <code>clone</code> tag and <code>{relay}</code> in its <code>relays</code> tag.</p>",
        description = escape(description),
        relay = escape(relay_url),
        base = escape(public_base),
    );
    document(&name, &body)
}

/// A repository's page: its clone URL and links to web clients.
pub fn repo_page(public_base: &str, repo: &RepoPath) -> String {
    let npub = escape(repo.npub());
    let identifier = escape(repo.identifier());
    let clone = escape(&format!("{public_base}/{}", repo.url_path()));
    let web = escape(&grasp_core::encode_identifier(repo.identifier()));
    let body = format!(
        "<h1>{identifier}</h1>\n<p>Owner: <code>{npub}</code></p>\n\
         <p>Clone: <code>git clone {clone}</code></p>\n\
         <p>Browse, open issues and pull requests with a git-nostr client:</p>\n<ul>\n\
         <li><a href=\"https://gitworkshop.dev/{npub}/{web}\">gitworkshop.dev</a></li>\n\
         </ul>"
    );
    document(&format!("{identifier} · {npub}"), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_show() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let page = landing_page("<b>", "d & e", "http://h", "ws://h");
        assert!(page.contains("&lt;b&gt;"));
        assert!(page.contains("d &amp; e"));
        assert!(!page.contains("<b>"));
    }

    #[test]
    fn repo_page_links_to_web_clients() {
        let repo = crate::git_ops::test_util::repo_path("proj<x>");
        let page = repo_page("https://git.example", &repo);
        assert!(page.contains("<h1>proj&lt;x&gt;</h1>"), "{page}");
        assert!(page.contains(&format!(
            "https://gitworkshop.dev/{}/proj%3Cx%3E",
            repo.npub()
        )));
        assert!(page.contains(&format!(
            "git clone https://git.example/{}/proj%3Cx%3E.git",
            repo.npub()
        )));
    }
}
