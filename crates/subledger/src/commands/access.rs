//! Access control commands: roles, sub-users, notices and the operation log.
//! The same service calls as `/v1`; every change is the CLI's (`Actor::Cli`).

use std::process::ExitCode;

use serde_json::{Value, json};
use subledger_domain::access::{AppSet, NoticeContent, NoticeTitle, RoleName, parse_app_ids};
use subledger_domain::account::{AccessState, Department, Extension, JobNumber, Password, PersonName, SeatNote, Username};
use subledger_domain::calendar::from_unix_micros;
use subledger_domain::ids::{AccountId, NoticeId, RoleId};
use subledger_domain::oplog::{Actor, Outcome};
use subledger_domain::paging::Page;
use subledger_service::notices::{NewNotice, Notice, NoticeFilter};
use subledger_service::oplog::{OPERATIONS_PAGE_MAX, OperationFilter};
use subledger_service::roles::{Role, RoleChanges};
use subledger_service::subusers::{NewSubUser, SUB_USER_PAGE_MAX, SubUserChanges, SubUserFilter, SubUserView};
use subledger_service::{Change, Services};

use super::print;
use crate::cli::{NoticeCommand, OplogCommand, RoleCommand, SubuserCommand};
use crate::serve::AnyError;

fn cli() -> Change {
    Change::by(Actor::Cli)
}

fn role_json(role: &Role) -> Value {
    json!({"id": role.id.0, "name": role.name, "level": role.level, "created_at": from_unix_micros(role.created_at_us).to_string()})
}

fn apps_json(apps: AppSet) -> Value {
    json!(apps.apps().map(|app| json!({"id": app.id.0, "pid": app.pid, "code": app.code})).collect::<Vec<_>>())
}

fn show_apps(json_output: bool, apps: AppSet) {
    print(json_output, apps_json(apps), || apps.apps().map(|app| format!("{}\t{}\t{}", app.id, app.code, app.name_en)).collect::<Vec<_>>().join("\n"));
}

fn ids(text: &str) -> Result<Vec<subledger_domain::access::AppId>, AnyError> {
    Ok(parse_app_ids(text)?)
}

fn access(text: Option<&str>) -> Option<AccessState> {
    text.map(|t| match t {
        "disabled" => AccessState::Disabled,
        "cancelled" => AccessState::Cancelled,
        _ => AccessState::Enabled,
    })
}

fn sub_user_json(view: &SubUserView) -> Value {
    let (a, seat) = (&view.account, &view.account.seat);
    json!({
        "id": a.id.0, "username": a.username, "access": format!("{:?}", a.access).to_lowercase(), "role_id": seat.role.map(|r| r.0), "role_name": view.role_name,
        "role_template": seat.role_template, "person_name": seat.person_name, "job_number": seat.job_number, "extension": seat.extension,
        "department": seat.department, "note": seat.note, "logins": seat.logins,
    })
}

fn notice_json(notice: &Notice) -> Value {
    json!({"id": notice.id.0, "title": notice.title, "content": notice.content, "targets": notice.targets.iter().map(|a| a.0).collect::<Vec<_>>(), "created_at": from_unix_micros(notice.created_at_us).to_string()})
}

pub async fn role(services: &Services, command: RoleCommand) -> Result<ExitCode, AnyError> {
    match command {
        RoleCommand::Create { tenant, name, level, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let role = services.create_role(&tenant, RoleName::parse(&name)?, level, &cli()).await?;
            print(json, role_json(&role), || format!("role {} {}", role.id, role.name));
        }
        RoleCommand::List { tenant, name, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let roles = services.roles(&tenant, name.as_deref()).await?;
            print(json, json!(roles.iter().map(role_json).collect::<Vec<_>>()), || roles.iter().map(|r| format!("{}\t{}\tlevel {}", r.id, r.name, r.level)).collect::<Vec<_>>().join("\n"));
        }
        RoleCommand::Show { tenant, role, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let role = services.role(&tenant, RoleId(role)).await?;
            print(json, role_json(&role), || format!("{}\t{}\tlevel {}", role.id, role.name, role.level));
        }
        RoleCommand::Update { tenant, role, name, level, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let changes = RoleChanges { name: name.as_deref().map(RoleName::parse).transpose()?, level };
            let role = services.update_role(&tenant, RoleId(role), changes, &cli()).await?;
            print(json, role_json(&role), || format!("{}\t{}\tlevel {}", role.id, role.name, role.level));
        }
        RoleCommand::Delete { tenant, role } => {
            let tenant = services.find_tenant(&tenant).await?;
            services.delete_role(&tenant, RoleId(role), &cli()).await?;
            println!("role {role} deleted");
        }
        RoleCommand::Apps { tenant, role, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            show_apps(json, services.role_apps(&tenant, RoleId(role)).await?);
        }
        RoleCommand::Grant { tenant, role, grant, revoke, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            show_apps(json, services.set_role_apps(&tenant, RoleId(role), &ids(&grant)?, &ids(&revoke)?, &cli()).await?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn subuser(services: &Services, command: SubuserCommand) -> Result<ExitCode, AnyError> {
    match command {
        SubuserCommand::Create { tenant, username, password, person_name, job_number, role, no_role_template, extension, department, note, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let new = NewSubUser {
                username: Username::parse(&username)?,
                password: Password::parse(&password)?,
                person_name: person_name.as_deref().map(PersonName::parse).transpose()?,
                job_number: job_number.as_deref().map(JobNumber::parse).transpose()?,
                role: role.map(RoleId),
                role_template: !no_role_template,
                extension: extension.map(Extension::new).transpose()?,
                email: None,
                phone: None,
                department: department.as_deref().map(Department::parse).transpose()?,
                note: note.as_deref().map(SeatNote::parse).transpose()?,
            };
            let account = services.create_sub_user(&tenant, new, &cli()).await?;
            let view = services.sub_user(&tenant, account.id).await?;
            print(json, sub_user_json(&view), || format!("sub-user {} {}", account.id, account.username));
        }
        SubuserCommand::List { tenant, username, role_name, access: state, offset, limit, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let filter = SubUserFilter { username, role_name, access: access(state.as_deref()), ..SubUserFilter::default() };
            let (total, views) = services.sub_users(&tenant, &filter, Page::new(offset, limit, SUB_USER_PAGE_MAX)?).await?;
            print(json, json!({"total": total, "items": views.iter().map(sub_user_json).collect::<Vec<_>>()}), || {
                let mut lines = vec![format!("{total} sub-users")];
                lines.extend(views.iter().map(|v| format!("{}\t{}\t{:?}\t{}", v.account.id, v.account.username, v.account.access, v.role_name.as_deref().unwrap_or("-"))));
                lines.join("\n")
            });
        }
        SubuserCommand::Update { tenant, username, person_name, job_number, extension, department, note, role, access: state, password, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let changes = SubUserChanges {
                person_name: person_name.as_deref().map(PersonName::parse).transpose()?,
                job_number: job_number.as_deref().map(JobNumber::parse).transpose()?,
                extension: extension.map(Extension::new).transpose()?,
                department: department.as_deref().map(Department::parse).transpose()?,
                note: note.as_deref().map(SeatNote::parse).transpose()?,
                role: role.map(|id| (id != 0).then_some(RoleId(id))),
                access: access(state.as_deref()),
                password: password.as_deref().map(Password::parse).transpose()?,
                ..SubUserChanges::default()
            };
            let account = services.account(&tenant, &username).await?;
            let view = services.update_sub_user(&tenant, account.id, changes, &cli()).await?;
            print(json, sub_user_json(&view), || format!("sub-user {} updated", view.account.username));
        }
        SubuserCommand::Apps { tenant, username, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let account = services.account(&tenant, &username).await?;
            show_apps(json, services.user_apps(&tenant, account.id).await?);
        }
        SubuserCommand::Grant { tenant, username, grant, revoke, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let account = services.account(&tenant, &username).await?;
            show_apps(json, services.set_user_apps(&tenant, account.id, &ids(&grant)?, &ids(&revoke)?, &cli()).await?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn notice(services: &Services, command: NoticeCommand) -> Result<ExitCode, AnyError> {
    match command {
        NoticeCommand::Create { tenant, title, content, targets, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let targets = targets.split(',').map(str::trim).filter(|t| !t.is_empty()).map(|t| t.parse::<i64>().map(AccountId)).collect::<Result<Vec<_>, _>>()?;
            let notice = services.create_notice(&tenant, NewNotice { title: NoticeTitle::parse(&title)?, content: NoticeContent::parse(&content)?, targets }, &cli()).await?;
            print(json, notice_json(&notice), || format!("notice {}", notice.id));
        }
        NoticeCommand::List { tenant, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let notices = services.notices(&tenant, &NoticeFilter::default()).await?;
            print(json, json!(notices.iter().map(notice_json).collect::<Vec<_>>()), || notices.iter().map(|n| format!("{}\t{}", n.id, n.title)).collect::<Vec<_>>().join("\n"));
        }
        NoticeCommand::Delete { tenant, notice } => {
            let tenant = services.find_tenant(&tenant).await?;
            services.delete_notice(&tenant, NoticeId(notice), &cli()).await?;
            println!("notice {notice} deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn oplog(services: &Services, command: OplogCommand) -> Result<ExitCode, AnyError> {
    let OplogCommand::List { tenant, user, offset, limit, json } = command;
    let tenant = services.find_tenant(&tenant).await?;
    let filter = OperationFilter { actor_name: user.as_deref(), ..OperationFilter::default() };
    let entries = services.operations(&tenant, &filter, Page::new(offset, limit, OPERATIONS_PAGE_MAX)?).await?;
    let rows: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({"id": e.id, "at": from_unix_micros(e.at_us).to_string(), "actor": e.actor.kind(), "actor_username": e.actor.username(), "kind": e.kind.code(),
                   "subject": e.subject, "detail": e.detail, "outcome": match &e.outcome { Outcome::Done => "done", Outcome::Refused(_) => "refused" }, "description": e.description})
        })
        .collect();
    print(json, json!(rows), || entries.iter().map(|e| format!("{}\t{}\t{}", e.id, from_unix_micros(e.at_us), e.description)).collect::<Vec<_>>().join("\n"));
    Ok(ExitCode::SUCCESS)
}
